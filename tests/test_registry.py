"""The one registry type: names, aliases, kinds, duplicates, entry points, and its users."""
from __future__ import annotations

import doctest
import importlib.metadata
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

import symnas as sn
import symnas.registry
from symnas.evaluators import zero_cost
from symnas.registry import Registry, normalize


def widget(size: int = 1) -> tuple:
    return ("widget", size)


def gadget(size: int = 1) -> tuple:
    return ("gadget", size)


def test_docstring_examples_run():
    result = doctest.testmod(symnas.registry)
    assert result.attempted >= 5 and result.failed == 0


def test_one_normalisation_on_register_and_on_lookup():
    reg = Registry("widget")
    reg.register("My-Widget", "other widget")(widget)
    assert reg.names() == ["my_widget"]
    for spelling in ("my-widget", "MY_WIDGET", " My Widget ", "my widget", "Other-Widget"):
        assert spelling in reg
        assert reg.lookup(spelling) is widget
        assert reg.canonical(spelling) == "my_widget"
    assert reg.get("my-widget", size=3) == ("widget", 3)
    assert normalize("A-b c") == "a_b_c"
    with pytest.raises(ValueError, match="empty"):
        normalize(" - ")
    with pytest.raises(TypeError, match="str"):
        normalize(3)  # type: ignore[arg-type]  # the wrong type is what is tested
    assert 3 not in reg


def test_decorator_forms():
    reg = Registry("widget")

    @reg.register
    def bare():
        return "bare"

    @reg.register()
    def called():
        return "called"

    @reg.register("named", aliases=["nick"])
    def named():
        return "named"

    assert reg.names() == ["bare", "called", "named"]
    assert reg.get("nick") == "named" and reg.aliases("named") == ["nick"]
    assert bare() == "bare"   # the decorator hands the function back unchanged


def test_a_taken_name_is_an_error_naming_both():
    reg = Registry("widget")
    reg.register("w", "alias")(widget)
    for name in ("w", "ALIAS"):
        with pytest.raises(ValueError, match=f"cannot register .*gadget as widget '{name.lower()}'"
                                             ".*taken by .*test_registry.widget") as e:
            reg.register(name)(gadget)
        assert "test_registry.gadget" in str(e.value)
    assert reg.names(aliases=True) == ["alias", "w"]      # nothing half-registered
    # the same object again is a no-op; a new name for it becomes an alias
    reg.register("w")(widget)
    reg.register("w", "third")(widget)
    assert reg.names() == ["w"] and reg.aliases("w") == ["alias", "third"]


def test_aliases_hidden_unless_asked_and_kinds():
    reg = Registry("widget", default_kind="small", kinds=("small", "big"))
    reg.register("w", "w2", "w3")(widget)
    reg.register("g", "g2", kind="big")(gadget)
    assert reg.names() == ["g", "w"]
    assert reg.names(aliases=True) == ["g", "g2", "w", "w2", "w3"]
    assert reg.names(kind="big") == ["g"] and reg.names(kind="small") == ["w"]
    assert reg.names(kind="big", aliases=True) == ["g", "g2"]
    assert reg.kind("w3") == "small" and reg.kind("g2") == "big"
    assert list(reg) == ["w", "g"] and len(reg) == 2          # registration order
    with pytest.raises(ValueError, match="kinds are small, big"):
        reg.names(kind="huge")
    with pytest.raises(ValueError, match="kinds are small, big"):
        reg.register("h", kind="huge")(lambda: None)
    with pytest.raises(ValueError, match="kind 'small'"):
        reg.register("w", kind="big")(widget)


def test_unknown_name_lists_canonical_names_and_suggests_the_closest():
    reg = Registry("widget")
    reg.register("sprocket", "spr")(widget)
    reg.register("gizmo")(gadget)
    with pytest.raises(KeyError) as e:
        reg.get("sprockt")
    msg = str(e.value)
    assert "unknown widget 'sprockt'" in msg and "did you mean 'sprocket'?" in msg
    assert "Registered: gizmo, sprocket." in msg and "spr," not in msg
    with pytest.raises(KeyError, match="did you mean 'sprocket'"):
        reg.lookup("SPR_")            # an alias's canonical name is suggested
    with pytest.raises(KeyError) as e:
        reg.get("zzzzzz")
    assert "did you mean" not in str(e.value)


# ---- entry points: a real installed distribution on sys.path ----------------------------
def _distribution(root, group: str, dist: str, entries: dict[str, str], module: str,
                  source: str) -> None:
    """Writes ``module.py`` and a real ``<dist>-1.0.dist-info`` with entry points into ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")


def test_entry_points_are_found_lazily(tmp_path, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    group, module = f"symnas_test_{tag}.widgets", f"symnas_plugin_{tag}"
    reg = Registry("widget", group=group, default_kind="small")
    _distribution(tmp_path, group, f"symnas_plugin_{tag}", {
        "plugin-widget": f"{module}:make_widget",    # an object: registered under this name
        "by_decorator": module,                      # a module: its decorators register
        "broken": f"{module}_missing:thing",         # fails to load; reported, not fatal
    }, module, f"""
        from {__name__} import REGISTRIES
        reg = REGISTRIES[{group!r}]

        def make_widget(size=1):
            return ("plugin", size)

        @reg.register("decorated", kind="big")
        def decorated():
            return "decorated"
    """)
    REGISTRIES[group] = reg
    reg.register("builtin")(widget)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert module not in sys.modules              # nothing loaded before the first miss
    assert reg.get("builtin") == ("widget", 1) and module not in sys.modules
    try:
        assert reg.get("Plugin-Widget", size=2) == ("plugin", 2)   # the first miss discovers
        assert module in sys.modules
        assert reg.names() == ["builtin", "decorated", "plugin_widget"]
        assert reg.kind("decorated") == "big" and reg.kind("plugin_widget") == "small"
        with pytest.raises(KeyError, match=r"broken \(ModuleNotFoundError"):
            reg.get("nope")
        assert reg.discover() == []               # loaded once
    finally:
        sys.modules.pop(module, None)
        REGISTRIES.pop(group, None)


def test_listing_also_discovers(tmp_path, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    group, module = f"symnas_test_{tag}.widgets", f"symnas_plugin_{tag}"
    _distribution(tmp_path, group, f"symnas_plugin_{tag}", {"listed": f"{module}:gadget"},
                  module, "def gadget():\n    return 'g'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("widget", group=group)
    try:
        assert reg.names() == ["listed"] and reg.get("listed") == "g"
    finally:
        sys.modules.pop(module, None)


REGISTRIES: dict[str, Registry] = {}


def test_a_third_party_algorithm_plugs_into_symnas(tmp_path):
    # The real registry of a fresh process finds an installed package's algorithm.
    _distribution(tmp_path, "symnas.algorithms", "symnas_extra_algos", {
        "coin-flip": "symnas_extra_algos:CoinFlip"}, "symnas_extra_algos", """
        import symnas as sn

        class CoinFlip(sn.algorithms.Random):
            pass
    """)
    code = ("import symnas as sn; a = sn.algorithms.get('COIN_FLIP', seed=0); "
            "print(type(a).__name__, 'coin_flip' in sn.algorithms.names(kind='black-box'))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CoinFlip", "True"]


# ---- the registries of symnas ------------------------------------------------------------
def test_builtins_are_entry_points_so_names_resolve_without_importing_the_layer():
    groups = {g: {ep.value for ep in importlib.metadata.entry_points(group=g)}
              for g in ("symnas.algorithms", "symnas.spaces", "symnas.proxies", "symnas.executors")}
    assert groups["symnas.algorithms"] >= {"symnas.algorithms"}
    assert groups["symnas.spaces"] >= {"symnas.spaces"}
    assert groups["symnas.proxies"] >= {"symnas.evaluators.zero_cost"}
    code = ("from symnas.registry import ALGORITHMS, SPACES, PROXIES; "
            "print(type(ALGORITHMS.get('re')).__name__, SPACES.canonical('nb201'), "
            "PROXIES.canonical('naswot'), 'darts' in ALGORITHMS.names(kind='weight-sharing'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["RegularizedEvolution", "nasbench201", "nwot", "True"]


def test_symnas_registries_share_the_type_and_rules():
    algos, spaces = sn.algorithms.ALGORITHMS, sn.spaces.SPACES
    assert algos is symnas.registry.ALGORITHMS and spaces is symnas.registry.SPACES
    assert zero_cost.PROXIES is symnas.registry.PROXIES
    assert all(isinstance(r, Registry) for r in (algos, spaces, zero_cost.PROXIES))
    assert (algos.group, spaces.group, zero_cost.PROXIES.group) == (
        "symnas.algorithms", "symnas.spaces", "symnas.proxies")
    # kinds: every algorithm is black-box or weight-sharing; DARTS shares weights
    assert "darts" in sn.algorithms.names(kind="weight-sharing")
    assert not {"darts", "spos"} & set(sn.algorithms.names(kind="black-box"))
    black_box = sn.algorithms.names(kind="black-box")
    assert {"random", "evolution", "de", "reinforce", "ppo"} <= set(black_box)
    ws = sn.algorithms.names(kind="weight-sharing")
    assert set(black_box).isdisjoint(ws) and set(black_box) | set(ws) <= set(sn.algorithms.names())
    # aliases are left out of listings unless asked
    assert "re" not in sn.algorithms.names() and "re" in sn.algorithms.names(aliases=True)
    assert sn.algorithms.lookup("Regularized-Evolution") is sn.algorithms.RegularizedEvolution
    assert sn.spaces.names() == ["darts", "mobilenet", "nasbench201"]
    assert sn.spaces.lookup("MobileNet-V2") is sn.spaces.mobilenet
    assert zero_cost.get("NASWOT") is zero_cost.nwot and zero_cost.get("grad-norm") is zero_cost.grad_norm


def test_a_dashed_algorithm_name_can_be_fetched():
    # Before the one registry, @register("my-algo") could never be fetched.
    @sn.algorithms.register("test-dashed-algo")
    class Dashed(sn.algorithms.Random):
        pass
    try:
        assert type(sn.algorithms.get("test-dashed-algo")) is Dashed
        assert type(sn.algorithms.get("test_dashed_algo")) is Dashed
        with pytest.raises(ValueError, match="taken by"):
            sn.algorithms.register("Test Dashed Algo")(sn.algorithms.Random)
    finally:   # keep the shared registry as the other tests expect it
        assert sn.algorithms.ALGORITHMS.unregister("Test-Dashed-Algo") is Dashed
    assert "test_dashed_algo" not in sn.algorithms.ALGORITHMS


def test_zero_cost_register_keeps_its_call_forms():
    def double_params(model, batch=None):
        return 2 * zero_cost.params(model)
    name = f"test_double_params_{uuid.uuid4().hex[:6]}"
    assert zero_cost.register(name, double_params, aliases=[name + "-alias"]) is double_params
    try:
        assert zero_cost.get(name.upper()) is double_params
        assert zero_cost.get(name + "_alias") is double_params
        assert zero_cost.names()[-1] == name
        with pytest.raises(ValueError, match="taken by"):
            zero_cost.register(name, zero_cost.params)
        with pytest.raises(TypeError, match="is a function"):
            zero_cost.register(name + "x", 3)  # type: ignore[arg-type]  # a non-callable, on purpose
    finally:
        zero_cost.PROXIES.unregister(name + "_alias")
    assert name not in zero_cost.PROXIES and name + "_alias" not in zero_cost.PROXIES
    assert zero_cost.names()[-1] == "flops"
