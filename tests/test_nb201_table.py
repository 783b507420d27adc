"""The packaged NAS-Bench-201 table: exact copy of the CSV, lookups, and use as an evaluator."""
from __future__ import annotations

import csv

import numpy as np
import pytest

import symnas as sn
from symnas.evaluators import nb201

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ALL_SKIP = ("|skip_connect~0|+|skip_connect~0|skip_connect~1|+"
            "|skip_connect~0|skip_connect~1|skip_connect~2|")


@pytest.fixture(scope="module")
def table():
    return nb201.NB201Table()


def test_known_cells(table):
    best = table.query(6111)
    assert best["test200_cifar10"] == 94.3733 and best["valid200_cifar10"] == 91.6067
    assert best["params"] == 1.073466 and best["index"] == 6111
    assert table.best("test200_cifar10") == 6111
    assert table.query(RESNET)["index"] == 11472
    assert table.query(11472)["test200_cifar10"] == 93.91
    assert table.index(ALL_SKIP) == 1835
    assert round(table.query(1835)["test200_cifar10"], 2) == 54.30
    assert nb201.OPTIMUM_TEST200_CIFAR10 == table.columns["test200_cifar10"].max()


def test_packaged_table_is_the_csv(table, data_dir, tmp_path):
    with open(data_dir / "nb201" / "nb201.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == nb201.NUM_ARCHS == len(table)
    for col in ("valid12_cifar10", "valid200_cifar10", "test200_cifar10", "test200_cifar100",
                "test12_imagenet16", "params_M_cifar10", "flops_M_imagenet16"):
        assert np.array_equal(table.columns[col], np.array([float(r[col]) for r in rows])), col
    assert [table.arch_str(i) for i in range(nb201.NUM_ARCHS)] == [r["arch"] for r in rows]
    assert np.array_equal(table.columns["iso_index"], [int(r["iso_index"]) for r in rows])
    # Re-packing the CSV gives the same arrays as the shipped copy.
    out = nb201.pack_table(data_dir / "nb201" / "nb201.csv", tmp_path / "t.npz")
    again = nb201.NB201Table(path=out)
    for col, arr in table.columns.items():
        assert np.array_equal(again.columns[col], arr), col


def test_query_forms_agree(table):
    space = sn.spaces.nasbench201(C=8, N=1)
    genome = nb201.arch_str_to_genome(RESNET)
    assert genome == (3, 0, 3, 1, 0, 1)
    arch = space.arch(genome)
    forms = [11472, np.int64(11472), RESNET, genome, list(genome), arch, arch.dna]
    results = [table.query(x) for x in forms]
    assert all(r == results[0] for r in results)
    assert results[0]["arch"] == RESNET
    assert nb201.index_of(arch) == 11472 and nb201.genome_of(11472) == genome


def test_genome_index_lookup_covers_all_cells(table):
    genomes = table.genomes.astype(np.int64)
    assert sorted(table.code_to_index.tolist()) == list(range(nb201.NUM_ARCHS))
    assert np.array_equal(table.indices(genomes), np.arange(nb201.NUM_ARCHS))
    rng = np.random.default_rng(0)
    for i in rng.choice(nb201.NUM_ARCHS, 300, replace=False).tolist():
        g = tuple(genomes[i].tolist())
        assert table.index(g) == i
        assert nb201.arch_str_to_genome(nb201.genome_to_arch_str(g)) == g


def test_datasets(table):
    c100 = table.query(6111, dataset="cifar100")
    assert set(c100) == {"valid12_cifar100", "test12_cifar100", "test200_cifar100",
                         "params", "flops", "index", "arch"}
    assert c100["params"] == 1.079316
    im = table.query(6111, dataset="ImageNet16-120")
    assert "test200_imagenet16" in im and im["flops"] == 38.707712
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 dataset"):
        table.query(0, dataset="mnist")


def test_bad_inputs(table):
    with pytest.raises(IndexError, match="0..15624"):
        table.query(15625)
    with pytest.raises(ValueError, match="cannot read NAS-Bench-201 arch string"):
        table.query("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError, match="node 2 needs 2 inputs"):
        nb201.arch_str_to_genome("|none~0|+|none~0|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError, match="6 op indices"):
        table.query((1, 2, 3))
    with pytest.raises(ValueError, match="no metric"):
        nb201.evaluator("valid200_cifar100")
    other = sn.Space({"x": sn.oneof([1, 2, 3])})
    with pytest.raises(ValueError, match="nasbench201"):
        table(other.arch((0,)))


def test_evaluator_in_search_finds_a_good_cell():
    space = sn.spaces.nasbench201()
    result = sn.search(space, "evolution", nb201.evaluator(), budget=100, seed=0,
                       objective="valid200_cifar10")
    assert len(result.trials) == 100 and not result.failed
    best = result.best.metrics
    valid = nb201.table().columns["valid200_cifar10"]
    # the best-by-validation cell found is in the top 2% of all 15,625 by validation accuracy
    assert (valid > best["valid200_cifar10"]).mean() < 0.02
    assert best["test200_cifar10"] == nb201.query(best["arch"])["test200_cifar10"]
    assert best["reward"] == best["valid200_cifar10"]
    # no objective given: the evaluator's `reward` (its metric) is used
    r2 = sn.search(space, "random", nb201.evaluator("test12_cifar10"), budget=20, seed=1)
    assert r2.best.metrics["reward"] == max(t.metrics["test12_cifar10"] for t in r2.trials)
