"""The NAS-Bench-201 table as an evaluator: every cell's accuracies in microseconds.

The table (all 15,625 cells; 12- and 200-epoch accuracies on CIFAR-10,
CIFAR-100 and ImageNet16-120, params, FLOPs) ships inside symnas as
``symnas/tables/nb201.npz`` (provenance in ``symnas/tables/PROVENANCE.md``).
It is loaded once per process. A query never builds a module: an architecture
is a *genome*, 6 op indices in arch-string edge order (:data:`EDGE_NAMES`)
over :data:`OP_NAMES`, and its base-5 code maps to the benchmark index through
a 15,625-entry lookup table. The encoding itself lives with the space, in
:mod:`symnas.spaces.nb201_encoding`; its names are re-exported here.

Example:

>>> import symnas as sn
>>> from symnas.evaluators import nb201
>>> table = nb201.NB201Table()
>>> table.query(6111)["test200_cifar10"]            # the optimum
94.3733
>>> row = table.query("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
...                   "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
>>> row["index"], row["test200_cifar10"], row["params"], row["flops"]
(9930, 94.3633, 1.288506, 186.258048)
>>> result = sn.search(sn.spaces.nasbench201(), "evolution", nb201.evaluator(),
...                    budget=100, objective="valid200_cifar10", seed=0)
>>> len(result.trials), result.best.reward > 90
(100, True)

Fidelities. The table holds each cell's accuracies after 12 and after 200
epochs; called with ``epochs=12`` or ``epochs=200`` it returns only that
column set, plus the fidelity-neutral metrics ``valid_<dataset>`` and
``test_<dataset>`` at those epochs (the objective of a multi-fidelity search:
``evaluator("valid_cifar10")``), and with ``report=`` it reports the 12-epoch
value on the way to 200, so pruners can stop a cell at 12 epochs:

>>> mf = evaluator("valid_cifar10")
>>> low, high = mf(6111, epochs=12), mf(6111, epochs=200)
>>> low["valid_cifar10"] == low["valid12_cifar10"], "valid200_cifar10" in low, high["epochs"]
(True, False, 200)
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

# The encoding lives with the space; its names are re-exported here for table users.
from symnas.spaces.nb201_encoding import (
    EDGE_NAMES,
    NUM_ARCHS,
    OP_NAMES,
    TABLE_PATH,
    arch_str_to_genome,
    check_space,
    code_to_index,
    genome_code,
    genome_to_arch_str,
    to_genome,
)
from symnas.spaces.nb201_encoding import PLACE as _PLACE

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16")
OPTIMUM_TEST200_CIFAR10 = 94.3733   # index 6111
EPOCHS: tuple[int, ...] = (12, 200)  # the fidelities the table holds

PACKAGED = Path(TABLE_PATH)

# The CSV's numeric columns and the decimals they carry; packed as exact scaled integers.
_DECIMALS: dict[str, int] = {
    "valid12_cifar10": 4, "test12_cifar10": 4, "valid200_cifar10": 4, "test200_cifar10": 4,
    "valid12_cifar100": 4, "test12_cifar100": 4, "test200_cifar100": 4,
    "valid12_imagenet16": 4, "test12_imagenet16": 4, "test200_imagenet16": 4,
    "params_M_cifar10": 6, "params_M_cifar100": 6, "params_M_imagenet16": 6,
    "flops_M_cifar10": 6, "flops_M_cifar100": 6, "flops_M_imagenet16": 6,
}
_ALIASES = {"cifar10": "cifar10", "cifar10-valid": "cifar10", "cifar100": "cifar100",
            "imagenet16": "imagenet16", "imagenet16-120": "imagenet16",
            "imagenet": "imagenet16", "imagenet16_120": "imagenet16"}


# ---- packing (run once, from the CSV) -------------------------------------------------------
def pack_table(csv_path: str | os.PathLike, out_path: str | os.PathLike = PACKAGED) -> Path:
    """Packs ``nb201.csv`` into the compressed table symnas ships (exact scaled integers).

    Run once when the CSV changes (``python benchmarks/build_nb201_table.py``);
    runtime code reads only the packed copy.
    """
    import csv
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != NUM_ARCHS:
        raise ValueError(f"{csv_path} has {len(rows)} rows; NAS-Bench-201 has {NUM_ARCHS}.")
    if [int(r["index"]) for r in rows] != list(range(NUM_ARCHS)):
        raise ValueError(f"{csv_path} is not in index order 0..{NUM_ARCHS - 1}.")
    arrays: dict[str, np.ndarray] = {
        "genome": np.array([arch_str_to_genome(r["arch"]) for r in rows], dtype=np.uint8),
        "iso_index": np.array([int(r["iso_index"]) for r in rows], dtype=np.int32),
        "is_valid": np.array([r["is_valid"] == "True" for r in rows], dtype=bool),
    }
    for col, dec in _DECIMALS.items():
        scaled = np.array([round(float(r[col]) * 10 ** dec) for r in rows], dtype=np.int64)
        back = scaled / 10 ** dec
        if not np.array_equal(back, np.array([float(r[col]) for r in rows])):
            raise ValueError(f"column {col} has more than {dec} decimals; raise _DECIMALS.")
        arrays[f"int_{col}"] = scaled.astype(np.int32)
        arrays[f"dec_{col}"] = np.array(dec, dtype=np.int8)
    if len({genome_code(g) for g in arrays["genome"].tolist()}) != NUM_ARCHS:
        raise ValueError("the CSV's arch strings are not the 15,625 distinct cells.")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_path, **arrays)  # type: ignore[arg-type]  # numpy's stub
    return out_path


# ---- the table ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"the NAS-Bench-201 table {path!r} is missing; it ships with symnas "
            "(symnas/tables/nb201.npz): reinstall symnas, or rebuild it from nb201.csv with "
            "symnas.evaluators.nb201.pack_table(csv_path).")
    out: dict[str, np.ndarray] = {}
    with np.load(path) as z:
        for key in z.files:
            if key.startswith("int_"):
                col = key[4:]
                out[col] = z[key] / 10.0 ** int(z[f"dec_{col}"])
            elif not key.startswith("dec_"):
                out[key] = z[key]
    out["code_to_index"] = code_to_index(out["genome"])
    for arr in out.values():
        arr.setflags(write=False)
    return out


def _dataset(name: str) -> str:
    key = str(name).lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown NAS-Bench-201 dataset {name!r}; use one of {', '.join(DATASETS)}.")
    return _ALIASES[key]


class NB201Table:
    """All 15,625 NAS-Bench-201 cells; query by genome, DNA, Arch, arch string or index.

    Columns are read-only numpy arrays (``table.columns["valid200_cifar10"]``).
    Called on an architecture, the table is an evaluator returning
    :meth:`query` for its ``dataset``, plus ``reward`` = its ``metric``.

    Example:

    >>> table = NB201Table()
    >>> table.query((3, 0, 3, 1, 0, 1))["test200_cifar10"], table.index((3, 0, 3, 1, 0, 1))  # ResNet-like
    (93.91, 11472)
    >>> table.index("|skip_connect~0|+|skip_connect~0|skip_connect~1|+"
    ...             "|skip_connect~0|skip_connect~1|skip_connect~2|")
    1835
    >>> table.best("test200_cifar10"), table.arch_str(6111)
    (6111, '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|')
    """

    def __init__(self, metric: str = "valid200_cifar10", dataset: str | None = None,
                 path: str | os.PathLike | None = None):
        self.path = str(path or PACKAGED)
        self.columns: dict[str, np.ndarray] = _load(self.path)
        self.dataset = _dataset(dataset if dataset is not None else _dataset_of(metric))
        known = self.metric_names(self.dataset) + self.fidelity_metrics(self.dataset)
        if metric not in known:
            raise ValueError(f"NB201Table has no metric {metric!r} for dataset {self.dataset!r}; "
                             f"choose one of {', '.join(known)}.")
        self.metric = metric
        self.genomes: np.ndarray = self.columns["genome"]           # (15625, 6) uint8
        self.code_to_index: np.ndarray = self.columns["code_to_index"]  # (15625,) int32
        self._code_to_index = _as_list(self.path, "code_to_index")
        self._checked_specs: set[int] = set()

    def __len__(self) -> int:
        return NUM_ARCHS

    def __repr__(self) -> str:
        return f"NB201Table(metric={self.metric!r}, dataset={self.dataset!r}, archs={NUM_ARCHS})"

    # ---- lookups ----------------------------------------------------------------------
    @staticmethod
    def metric_names(dataset: str = "cifar10") -> tuple[str, ...]:
        """The keys :meth:`query` returns for ``dataset``."""
        d = _dataset(dataset)
        accs = tuple(c for c in _DECIMALS if c.endswith("_" + d) and not c.startswith(("params", "flops")))
        return accs + ("params", "flops", "index", "arch")

    @staticmethod
    def fidelity_metrics(dataset: str = "cifar10") -> tuple[str, ...]:
        """The fidelity-neutral metrics (``valid_<d>``, ``test_<d>``) at any ``epochs=``."""
        d = _dataset(dataset)
        return tuple(f"{k}_{d}" for k in ("valid", "test") if f"{k}200_{d}" in _DECIMALS)

    def index(self, x: Any) -> int:
        """The benchmark index of a genome, DNA, Arch, arch string or index."""
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            i = int(x)
            if not 0 <= i < NUM_ARCHS:
                raise IndexError(f"NAS-Bench-201 indices are 0..{NUM_ARCHS - 1}, got {i}.")
            return i
        return self._code_to_index[genome_code(self.genome_of(x))]

    def genome_of(self, x: Any) -> tuple[int, ...]:
        """The genome (6 op indices) of a genome, DNA, Arch, arch string or index."""
        if isinstance(x, tuple) and len(x) == 6 and all(type(v) is int and 0 <= v < 5 for v in x):
            return x  # the hot path: a canonical genome
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            return tuple(self.genomes[self.index(x)].tolist())
        return to_genome(x, self._check_space)

    def arch_str(self, x: Any) -> str:
        """The arch string of a genome, DNA, Arch, arch string or index."""
        return _arch_strings(self.path)[self.index(x)]

    def _check_space(self, space: Any) -> None:   # once per space: the hot path is per trial
        gs = getattr(space, "genome_spec", None)
        if gs is None or id(gs) in self._checked_specs:
            return
        check_space(space)
        self._checked_specs.add(id(gs))

    def query(self, x: Any, dataset: str | None = None) -> dict[str, Any]:
        """Accuracies (12/200 epochs), params (M), FLOPs (M), index and arch string of a cell.


        ``dataset`` is 'cifar10' (default: the table's), 'cifar100' or
        'imagenet16'. CIFAR-100 and ImageNet16-120 have no 200-epoch
        validation figure in the table.
        """
        d = self.dataset if dataset is None else _dataset(dataset)
        i = self.index(x)
        keys, cols = _row_lists(self.path, d)
        out = {k: c[i] for k, c in zip(keys, cols)}
        out["index"] = i
        out["arch"] = _arch_strings(self.path)[i]
        return out

    def __call__(self, arch: Any, epochs: int | None = None, report: Any = None) -> dict[str, Any]:
        """The evaluator: :meth:`query` for this table's dataset plus ``reward``.

        With ``epochs`` (12 or 200) only that fidelity's columns, plus
        ``valid_<dataset>``, ``test_<dataset>`` and ``epochs``; ``report`` gets
        the 12-epoch metrics first when 200 are asked for.
        """
        if epochs is None and self.metric not in self.fidelity_metrics(self.dataset):
            out = self.query(arch)
            out["reward"] = out[self.metric]
            return out
        epochs = EPOCHS[-1] if epochs is None else epochs
        if epochs not in EPOCHS:
            raise ValueError(f"the NAS-Bench-201 table holds 12- and 200-epoch results, not "
                             f"epochs={epochs!r}; use fidelity=[12, 200].")
        row = self.query(arch)
        if report is not None and epochs == 200 and self.metric in self.fidelity_metrics(self.dataset):
            report(self._at(row, 12), 12)
        out = self._at(row, epochs)
        if self.metric in out:
            out["reward"] = out[self.metric]
        return out

    def check_fidelity(self, levels: Any) -> None:
        """Refuses fidelities the table does not hold, or an objective tied to one of them."""
        if any(v not in EPOCHS for v in levels):
            raise ValueError(f"the NAS-Bench-201 table holds 12- and 200-epoch results; "
                             f"fidelity={list(levels)} asks for others: use fidelity=[12, 200].")
        if self.metric not in self.fidelity_metrics(self.dataset):
            raise ValueError(f"this table's metric {self.metric!r} exists at one fidelity only; "
                             "a search with fidelity= needs the fidelity-neutral one: "
                             f"nb201.evaluator({self.fidelity_metrics(self.dataset)[0]!r}).")

    def _at(self, row: dict, epochs: int) -> dict[str, Any]:
        """The metrics of a queried row at ``epochs`` (the other fidelity's left out)."""
        d, other = self.dataset, 200 if epochs == 12 else 12
        out = {k: v for k, v in row.items() if not k.startswith((f"valid{other}_", f"test{other}_"))}
        for kind in ("valid", "test"):
            col = f"{kind}{epochs}_{d}"
            if col in row:
                out[f"{kind}_{d}"] = row[col]
        out["epochs"] = epochs
        return out

    # ---- whole-table facts ------------------------------------------------------------
    def best(self, metric: str = "test200_cifar10") -> int:
        """The index with the highest ``metric`` (a column name, e.g. ``valid200_cifar10``)."""
        if metric not in self.columns or self.columns[metric].dtype.kind != "f":
            raise ValueError(f"no accuracy column {metric!r}; columns: "
                             f"{', '.join(c for c in _DECIMALS)}.")
        return int(np.argmax(self.columns[metric]))

    def indices(self, genomes: np.ndarray) -> np.ndarray:
        """Vectorized genome -> index for an ``(n, 6)`` integer array."""
        g = np.asarray(genomes, dtype=np.int64)
        return self.code_to_index[g @ _PLACE]


def _dataset_of(metric: str) -> str:
    for d in DATASETS:
        if metric.endswith("_" + d):
            return d
    return "cifar10"


@functools.lru_cache(maxsize=16)
def _as_list(path: str, column: str) -> list:
    return _load(path)[column].tolist()


@functools.lru_cache(maxsize=4)
def _arch_strings(path: str) -> list[str]:
    return [genome_to_arch_str(g) for g in _load(path)["genome"].tolist()]


@functools.lru_cache(maxsize=16)
def _row_lists(path: str, dataset: str) -> tuple[tuple[str, ...], tuple[list, ...]]:
    """Column names and Python-list columns for one dataset (fast scalar access)."""
    cols = _load(path)
    names = [n for n in NB201Table.metric_names(dataset)
             if n not in ("index", "arch") and n in _DECIMALS or n in ("params", "flops")]
    lists = tuple(cols[f"{n}_M_{dataset}" if n in ("params", "flops") else n].tolist() for n in names)
    return tuple(names), lists


@functools.lru_cache(maxsize=1)
def table() -> NB201Table:
    """The shared default table (metric ``valid200_cifar10``)."""
    return NB201Table()


def evaluator(metric: str = "valid200_cifar10", dataset: str | None = None) -> NB201Table:
    """A table evaluator for ``sn.search``: returns :meth:`NB201Table.query` plus ``reward = metric``.

    Example:

    >>> import symnas as sn
    >>> result = sn.search(sn.spaces.nasbench201(), "evolution", evaluator(),
    ...                    budget=100, objective="valid200_cifar10", seed=0)
    >>> test = table().query(result.best.arch)["test200_cifar10"]    # its test accuracy
    >>> 90 < test <= OPTIMUM_TEST200_CIFAR10
    True
    """
    return NB201Table(metric=metric, dataset=dataset)


def index_of(x: Any) -> int:
    """The benchmark index of a genome, DNA, Arch or arch string."""
    return table().index(x)


def genome_of(x: Any) -> tuple[int, ...]:
    """The genome of a benchmark index (or arch string, DNA, Arch)."""
    return table().genome_of(x)


def query(x: Any, dataset: str = "cifar10") -> dict[str, Any]:
    """:meth:`NB201Table.query` on the shared table."""
    return table().query(x, dataset)


__all__ = ["OP_NAMES", "EDGE_NAMES", "NUM_ARCHS", "DATASETS", "OPTIMUM_TEST200_CIFAR10", "EPOCHS",
           "NB201Table", "table", "evaluator", "query", "index_of", "genome_of",
           "arch_str_to_genome", "genome_to_arch_str", "genome_code", "pack_table"]
