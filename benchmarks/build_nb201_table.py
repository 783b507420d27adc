"""Packs the NAS-Bench-201 CSV into the table symnas ships (run once when the CSV changes).

Usage::

    SYMNAS_DATA=/path/to/data python benchmarks/build_nb201_table.py

Reads ``$SYMNAS_DATA/nb201/nb201.csv`` and writes ``symnas/tables/nb201.npz``
(exact scaled integers, compressed). See ``symnas/tables/PROVENANCE.md``.
"""
from __future__ import annotations

from symnas.data import data_path
from symnas.evaluators.nb201 import PACKAGED, pack_table

if __name__ == "__main__":
    out = pack_table(data_path("nb201/nb201.csv"), PACKAGED)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
