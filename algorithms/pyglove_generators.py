"""PyGlove's own generators under registry names, as PyGlove ships them.

Example:

>>> import symnas as sn
>>> algo = sn.algorithms.get("pg_evolution", population_size=50)
>>> isinstance(algo, pg.DNAGenerator), sn.algorithms.lookup("pg_nsga2") is pg.evolution.nsga2
(True, True)
>>> space = sn.Space({f"x{i}": sn.oneof([0, 1, 2, 3, 4]) for i in range(4)})
>>> result = sn.search(space, "pg_random", lambda arch: float(arch.decisions["x0"]), budget=10, seed=0)
>>> len(result.trials)
10
"""
from __future__ import annotations

import pyglove as pg

from .registry import register

register("pg_random")(pg.geno.Random)
register("pg_evolution", "pg_regularized_evolution")(pg.evolution.regularized_evolution)
register("pg_hill_climb")(pg.evolution.hill_climb)
register("nsga2", "pg_nsga2")(pg.evolution.nsga2)
