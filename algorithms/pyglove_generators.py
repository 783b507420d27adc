"""PyGlove's own generators under registry names, as PyGlove ships them.

Example::

    algo = symnas.algorithms.get("pg_evolution", population_size=50)
"""
from __future__ import annotations

import pyglove as pg

from .registry import register

register("pg_random")(pg.geno.Random)
register("pg_evolution", "pg_regularized_evolution")(pg.evolution.regularized_evolution)
register("pg_hill_climb")(pg.evolution.hill_climb)
register("nsga2", "pg_nsga2")(pg.evolution.nsga2)
