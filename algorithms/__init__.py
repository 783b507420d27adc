"""symnas.algorithms: black-box and weight-sharing search algorithms.

Every algorithm is a PyGlove ``DNAGenerator``; swap one for another with one
argument of :func:`symnas.search`. The registry :data:`ALGORITHMS` names them:
:func:`get`, :func:`lookup`, :func:`names` (``names(kind=WEIGHT_SHARING)``
lists the ones that share weights).

Example:

>>> import symnas as sn
>>> algo = sn.algorithms.get("evolution", population_size=20)
>>> type(algo).__name__, algo.population_size, sn.algorithms.lookup("re") is type(algo)
('RegularizedEvolution', 20, True)
>>> sn.algorithms.names(kind="black-box")     # doctest: +ELLIPSIS
['de', 'evolution', ..., 'nsga2', ..., 'random', 'reinforce']
>>> "darts" in sn.algorithms.names(kind=sn.algorithms.WEIGHT_SHARING)
True
"""
from .registry import ALGORITHMS, BLACK_BOX, WEIGHT_SHARING, get, lookup, names, register  # isort: skip
from . import pyglove_generators
from .asha import ASHA
from .base import Algorithm
from .controllers import PPO, Reinforce
from .darts import DARTS
from .dehb import DEHB
from .differential_evolution import DifferentialEvolution
from .evolution import RegularizedEvolution
from .hyperband import Hyperband, SuccessiveHalving
from .model_based import LocalBO, LocalSearch
from .nsga2 import NSGA2
from .random_search import Random
from .single_path import SPOS, Sandwich, SinglePath

__all__ = ["ALGORITHMS", "BLACK_BOX", "WEIGHT_SHARING", "Algorithm", "get", "lookup", "names",
           "register", "Random", "RegularizedEvolution", "DifferentialEvolution", "Reinforce",
           "PPO", "DARTS", "pyglove_generators", "ASHA", "DEHB", "Hyperband", "SuccessiveHalving",
           "LocalBO", "LocalSearch", "NSGA2", "SPOS", "Sandwich", "SinglePath"]
