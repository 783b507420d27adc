"""The first hour of a new user (issue 16): mistakes fail at once, saved work rebuilds anywhere.

Real objects throughout: torch modules built from real spaces, real child
processes for the "another script" cases, the real CIFAR-10 data folder.
"""
from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import symnas as sn
from models_for_tests import Block, ConvNet, TwoBlocks, mlp
from symnas import data as sn_data
from symnas.objective import MissingMetric, Objectives

ROOT = Path(__file__).resolve().parents[1]


def child(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Runs ``python -c code`` in ``cwd`` (a fresh interpreter: nothing of this process)."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=300)


# ---- the data folder ----------------------------------------------------------------------
def test_relative_data_folder_is_resolved_once_and_exported(data_dir, tmp_path, monkeypatch):
    here = tmp_path / "checkout"
    here.mkdir()
    relative = os.path.relpath(data_dir, here)
    monkeypatch.chdir(here)
    monkeypatch.setenv("SYMNAS_DATA", relative)
    found = sn_data.data_dir()
    assert found == data_dir.resolve() and found.is_absolute()
    assert os.environ["SYMNAS_DATA"] == str(found)          # written back, absolute
    monkeypatch.chdir(tmp_path)                               # a later chdir changes nothing
    assert sn_data.data_path("nb201/nb201.csv") == found / "nb201" / "nb201.csv"
    # a child started from another folder sees the same folder
    out = child("import os; print(os.environ['SYMNAS_DATA'])", cwd=tmp_path)
    assert out.stdout.strip() == str(found)


def test_missing_relative_data_folder_says_where_it_was_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYMNAS_DATA", "no/such/folder")
    with pytest.raises(FileNotFoundError, match="relative path 'no/such/folder' read in"):
        sn_data.data_dir()
    assert os.environ["SYMNAS_DATA"] == "no/such/folder"     # nothing exported on failure


# ---- rewards are numbers ------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["0.9", b"0.9", True, False, np.bool_(True), torch.tensor(True)])
def test_strings_and_booleans_are_not_rewards(bad):
    objs = Objectives.parse("acc")
    with pytest.raises(TypeError, match="not a number"):
        objs.metrics(bad)
    with pytest.raises(TypeError, match="not a number"):
        objs.metrics({"acc": bad})
    with pytest.raises(TypeError, match="not a number"):
        objs.check_metrics({"acc": bad})


@pytest.mark.parametrize("good", [0.9, 1, np.float32(0.9), np.int64(3), torch.tensor(0.9),
                                  torch.tensor([0.9])])
def test_numpy_and_torch_scalars_are_rewards(good):
    objs = Objectives.parse("acc")
    assert objs.metrics(good)["acc"] == pytest.approx(float(good))
    assert objs.metrics({"acc": good, "arch": "a string beside it is fine"})["acc"] == \
        pytest.approx(float(good))


def test_a_constraint_on_a_string_metric_is_an_error():
    objs = Objectives.parse("acc", constraints=["params <= 1"])
    with pytest.raises(TypeError, match="'params'.*string"):
        objs.feasible({"acc": 1.0, "params": "0.5"})


# ---- the default objective ----------------------------------------------------------------
def test_the_evaluators_metric_is_the_default_objective(data_dir):
    task = sn.Task.cifar10()
    objs = Objectives.parse(None, default=task.metric)
    assert [o.name for o in objs] == ["valid_acc"] and not objs.implicit
    # objective= overrides the declared metric
    assert [o.name for o in Objectives.parse("-train_loss", default="valid_acc")] == ["train_loss"]
    assert Objectives.parse("-train_loss", default="valid_acc")[0].mode == "min"


def test_a_one_metric_dict_names_the_objective():
    objs = Objectives.parse()
    assert objs.implicit and objs[0].name == "reward"
    assert objs.metrics({"acc": 0.5}) == {"acc": 0.5}
    assert objs[0].name == "acc" and not objs.implicit
    assert objs.reward({"acc": 0.7}) == 0.7
    # a bare number stays `reward`; a dict with `reward` keeps it
    assert Objectives.parse().metrics(3) == {"reward": 3.0}
    assert Objectives.parse().metrics({"reward": 1, "acc": 2})["reward"] == 1.0


def test_check_metrics_names_the_missing_metric_the_available_ones_and_the_fix():
    returned = {"params_M": 0.1, "train_loss": 2.0, "train_seconds": 1.0, "valid_acc": 40.0}
    with pytest.raises(MissingMetric) as e:
        Objectives.parse().check_metrics(returned)
    text = str(e.value)
    assert "objective 'reward'" in text and str(sorted(returned)) in text and "objective=" in text
    with pytest.raises(MissingMetric, match="did you mean 'valid_acc'"):
        Objectives.parse("valid_ac").check_metrics(returned)
    with pytest.raises(MissingMetric, match=r"constraint 'params <= 1\.0' names metric 'params'.*"
                                            r"did you mean 'params_M'"):
        Objectives.parse("valid_acc", ["params <= 1.0"]).check_metrics(returned)
    # a callable constraint that reads a missing metric
    with pytest.raises(MissingMetric, match="reads metric 'flops'"):
        Objectives.parse("valid_acc", [lambda m: m["flops"] < 3]).check_metrics(returned)
    with pytest.raises(KeyError):            # MissingMetric is a KeyError, as before
        Objectives.parse("valid_acc", ["params <= 1.0"]).feasible(returned)
    # all well: nothing raised, a number checked as the single objective
    Objectives.parse("valid_acc", ["params_M <= 1.0"]).check_metrics(returned)
    Objectives.parse("acc").check_metrics(0.5)
    with pytest.raises(TypeError, match="2 objectives"):
        Objectives.parse(["a", "b"]).check_metrics(0.5)


# ---- build() returns the user's class ------------------------------------------------------
def test_build_returns_the_users_own_class():
    space = sn.Space(TwoBlocks(first=sn.oneof([Block(4, 8, act=nn.GELU), Block(4, 8)]),
                               second=Block(8, 8), out=sn.oneof([2, 3])))
    model = space.build([0, 1])
    assert type(model) is TwoBlocks.sym_wrapped_cls and type(model).__name__ == "TwoBlocks"
    assert type(model.first) is Block.sym_wrapped_cls and type(model.second).__name__ == "Block"
    assert isinstance(model, TwoBlocks) and isinstance(model.first, Block)   # the names users have
    assert not isinstance(model.first, TwoBlocks) and not isinstance(nn.Linear(2, 2), Block)
    text = repr(model)
    assert text.startswith("TwoBlocks(\n") and "(lin): Linear(in_features=4, out_features=8" in text
    assert "(act): GELU(" in text and "(out): Linear(in_features=8, out_features=3" in text
    # it trains
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    before = nn.functional.cross_entropy(model(x), y).item()
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert nn.functional.cross_entropy(model(x), y).item() < before
    # deepcopy copies the weights (a symbolic wrapper would rebuild with new ones)
    twin = copy.deepcopy(model)
    assert type(twin) is type(model) and twin is not model
    for a, b in zip(model.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(twin(x), model(x))
    # state_dict round trip into a fresh build, and torch.save of the whole module
    fresh = space.build([0, 1])
    assert not torch.equal(fresh(x), model(x))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(x), model(x))
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    again = torch.load(buf, weights_only=False)
    assert type(again) is type(model) and torch.equal(again(x), model(x))


def test_builder_functions_and_nested_symbolic_modules_are_unwrapped():
    model = sn.Space(mlp(width=sn.oneof([4, 32]))).build([1])
    assert type(model) is nn.Sequential and model[0].out_features == 32
    conv = sn.Space(ConvNet(width=sn.oneof([4, 8]))).build([0])
    assert type(conv) is ConvNet.sym_wrapped_cls
    assert "(head): Linear(in_features=4, out_features=10" in repr(conv)


# ---- validate() names the culprit -----------------------------------------------------------
@sn.searchable
class FourWidths(nn.Module):
    """w4 = 512 breaks the head (built for 256 inputs); the other widths are harmless."""

    def __init__(self, w1=8, w2=8, w3=8, w4=256):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, w1), nn.Linear(w1, w2), nn.Linear(w2, w3),
                                  nn.Linear(w3, w4))
        self.head = nn.Linear(256, 10)

    def forward(self, x):
        return self.head(self.body(x))


def test_validate_reports_what_the_failures_have_in_common():
    w = {f"w{i}": sn.oneof([8, 16], name=f"w{i}") for i in (1, 2, 3)}
    space = sn.Space(FourWidths(**w, w4=sn.oneof([256, 512], name="w4")))
    problems = space.validate((2, 4), n=12, seed=0)
    assert 0 < len(problems) < 12
    assert all(p["decisions"]["w4"] == 512 for p in problems)
    assert all(p["common"] == {"w4": 512} for p in problems)
    assert all(p["suspects"].get("w4") == 512 for p in problems)
    with pytest.raises(ValueError) as e:
        space.check((2, 4), n=12, seed=0)
    n = len(problems)
    assert f"all {n} failures have w4=512, which no passing sample has" in str(e.value)


def test_validate_without_a_common_value_lists_the_suspects():
    @sn.searchable
    class TwoWays(nn.Module):
        def __init__(self, a=1, b=1):
            super().__init__()
            self.fail = (a == 3) or (b == 3)
            self.l = nn.Linear(2, 2)

        def forward(self, x):
            if self.fail:
                raise RuntimeError("bad combination")
            return self.l(x)

    space = sn.Space(TwoWays(a=sn.oneof([1, 2, 3], name="a"), b=sn.oneof([1, 2, 3], name="b")))
    problems = space.validate((2, 2), n=30, seed=1)
    with pytest.raises(ValueError, match="no one value is in every failure; values only failing "
                                         "samples have: a=3, b=3"):
        space.check((2, 2), n=30, seed=1)
    assert problems and all(p["common"] == {} for p in problems)


# ---- quietly accepted no more ----------------------------------------------------------------
def test_a_one_candidate_choice_warns():
    with pytest.warns(UserWarning, match=r"sn.oneof \(name='w'\) has one candidate, 5, so it is "
                                         "not a decision"):
        sn.oneof([5], name="w")
    with pytest.warns(UserWarning, match="sn.intv has one candidate"):
        sn.intv(3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sn.oneof([5, 6])
        sn.intv(1, 2)


def test_demo_rejects_an_unknown_algorithm_naming_the_closest(tmp_path):
    from symnas import cli
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--algorithms", "random,evolutoin", "--out", str(tmp_path)])
    text = str(e.value.code)
    assert "unknown algorithm 'evolutoin'" in text and "Did you mean 'evolution'?" in text
    assert "random" in text and "de" in text.split("Black-box algorithms:")[1]
    assert not (tmp_path / "summary.json").exists()            # stopped before any search
    with pytest.raises(SystemExit, match="shares weights"):
        cli.main(["demo", "--algorithms", "darts", "--out", str(tmp_path)])


# ---- saved architectures rebuild anywhere ---------------------------------------------------
SCRIPT = '''
"""A user's search script: the model lives in it (README's pattern)."""
import sys
import symnas as sn
from torch import nn

WIDTHS = [8, 16, 32]
open("imported.log", "a").write("top level ran\\n")   # a call at top level: never re-run by load


@sn.searchable
class Net(nn.Module):
    def __init__(self, width=8, act=nn.ReLU):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, width), act(), nn.Linear(width, 2))

    def forward(self, x):
        return self.body(x)


class Swish(nn.Module):
    def forward(self, x):
        return x * x.sigmoid()


def make():
    return Net(width=sn.oneof(WIDTHS, name="width"), act=sn.oneof([nn.ReLU, Swish], name="act"))


if __name__ == "__main__":
    open("main.log", "a").write("main ran\\n")
    space = sn.trace(make) if sys.argv[1] == "traced" else sn.Space(make())
    arch = space.arch([2, 1])
    model = arch.build()
    arch.save(sys.argv[2])
    # the script itself reloads its own file (its __main__ classes are right here)
    again = sn.load(sys.argv[2]).build()
    print(type(model).__name__, sum(p.numel() for p in model.parameters()),
          type(again).__name__, type(again.body[1]).__name__)
'''

LOAD = ("import symnas as sn, sys; m = sn.load(sys.argv[1] if len(sys.argv) > 1 else {path!r})"
        ".build(); print(type(m).__name__, sum(p.numel() for p in m.parameters()), "
        "type(m.body[1]).__name__, m.body[0].out_features)")


@pytest.mark.parametrize("kind", ["symbolic", "traced"])
def test_an_architecture_of_a_script_rebuilds_in_another_process(tmp_path, kind):
    work, other = tmp_path / "project", tmp_path / "elsewhere"
    work.mkdir(), other.mkdir()
    script = work / "search.py"
    script.write_text(SCRIPT)
    saved = work / "best.json"
    out = subprocess.run([sys.executable, str(script), kind, str(saved)], cwd=work,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    n = 4 * 32 + 32 + 32 * 2 + 2
    assert out.stdout.split() == ["Net", str(n), "Net", "Swish"]
    data = json.loads(saved.read_text())
    assert data["modules"] == {"__main__": str(script)}
    # another process, another folder, the script not importable by name
    out = child(LOAD.format(path=str(saved)), cwd=other)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["Net", str(n), "Swish", "32"]
    # the script's definitions were imported; its top-level call and main block did not run again
    assert (work / "main.log").read_text() == "main ran\n"
    assert (work / "imported.log").read_text() == "top level ran\n"
    assert not (other / "imported.log").exists() and not (other / "main.log").exists()


def test_a_notebook_architecture_says_to_pass_the_space(tmp_path):
    """``python -`` has a ``__main__`` without a file, as a notebook does."""
    code = textwrap.dedent('''
        import symnas as sn
        from torch import nn

        @sn.searchable
        class Net(nn.Module):
            def __init__(self, width=8):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))

        sn.Space(Net(width=sn.oneof([8, 16]))).arch([1]).save("nb.json")
    ''')
    out = subprocess.run([sys.executable, "-"], input=code, cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "modules" not in json.loads((tmp_path / "nb.json").read_text())
    out = child(LOAD.format(path=str(tmp_path / "nb.json")), cwd=tmp_path)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: cannot rebuild ") and "'__main__.Net'" in last
    assert last.endswith("pass the space: sn.load(path, space=space).")


def test_a_moved_script_says_to_pass_the_space(tmp_path):
    work = tmp_path / "p"
    work.mkdir()
    (work / "search.py").write_text(SCRIPT)
    out = subprocess.run([sys.executable, "search.py", "symbolic", "best.json"], cwd=work,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (work / "search.py").rename(work / "renamed.py")
    with pytest.raises(ValueError, match=r"defined in the script .*search\.py .*pass the space: "
                                         r"sn\.load\(path, space=space\)\.$"):
        sn.load(work / "best.json").build()


def test_a_traced_lambda_is_refused_at_save_with_the_advice(tmp_path):
    space = sn.trace(lambda: nn.Linear(4, sn.oneof([2, 3], name="out")))
    arch = space.sample(seed=0)
    with pytest.raises(ValueError, match=r"cannot save an architecture of sn.trace\(.*<lambda>\).*"
                                         r"def at module level.*space.build\(arch.genome\)"):
        arch.save(tmp_path / "lambda.json")
    assert not (tmp_path / "lambda.json").exists()
    # the space itself still rebuilds it
    assert space.build(arch.genome).out_features == arch.decisions["out"]


def test_load_with_space_rebuilds_from_that_space(tmp_path):
    space = sn.Space(ConvNet(width=sn.oneof([4, 8])))
    path = space.arch([1]).save(tmp_path / "a.json")
    model = sn.load(path, space=space).build()
    assert type(model) is ConvNet.sym_wrapped_cls and model.head.in_features == 8


# ---- a plain checkout ------------------------------------------------------------------------
def test_pytest_in_a_checkout_that_is_not_installed_says_how_to_fix_it(tmp_path):
    """No editable install: ``symnas`` imports from the folder, ``symnas.spaces`` cannot."""
    import shutil
    import site
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "symnas", checkout / "symnas",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", checkout / "tests" / "conftest.py")
    (checkout / "tests" / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    # -S: no site-packages .pth files, so the editable install's import hook is not there;
    # the packages themselves (pytest, torch, pyglove) stay importable through PYTHONPATH.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(site.getsitepackages()))
    out = subprocess.run([sys.executable, "-S", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests"], cwd=checkout, env=env, capture_output=True, text=True,
                         timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "symnas is not installed" in text, text[-3000:]
    assert 'pip install -e ".[test]"' in text and "1 passed" not in text
