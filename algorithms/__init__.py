"""symnas.algorithms: black-box and weight-sharing search algorithms.

Every algorithm is a PyGlove ``DNAGenerator``; swap one for another with one
argument of :func:`symnas.search`. Names: :func:`get` / :func:`names`.

Example::

    import symnas as sn
    algo = sn.algorithms.get("evolution", population_size=20)
"""
from .base import Algorithm
from .registry import get, names, register
from .random_search import Random
from .evolution import RegularizedEvolution
from . import pyglove_generators
from .differential_evolution import DifferentialEvolution
from .controllers import PPO, Reinforce
from .darts import DARTS

__all__ = ["Algorithm", "get", "names", "register", "Random", "RegularizedEvolution"]
__all__ += ["DifferentialEvolution", "Reinforce", "PPO"]
