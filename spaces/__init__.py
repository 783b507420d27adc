"""symnas.spaces: standard search spaces as symbolic programs, by name.

Each space is a factory function registered in :data:`SPACES` where it is
defined; its helpers live in the module beside it:

=====================  ====================================  ===================================
factory                module (helpers)                      names
=====================  ====================================  ===================================
``nasbench201(...)``   :mod:`~symnas.spaces.nasbench201_space`  nasbench201, nb201, nas_bench_201
``darts(...)``         :mod:`~symnas.spaces.darts_space`        darts
``mobilenet(...)``     :mod:`~symnas.spaces.mobilenet_space`    mobilenet, mobilenet_v2
=====================  ====================================  ===================================

Example:

>>> import symnas as sn
>>> from symnas.spaces import nasbench201_space as nb
>>> space = sn.spaces.nasbench201()              # or sn.spaces.get("nasbench201", C=8, N=1)
>>> sn.spaces.names()
['darts', 'mobilenet', 'nasbench201']
>>> sn.spaces.lookup("nb201") is sn.spaces.nasbench201
True
>>> nb.index_of(space.sample(seed=0))            # the benchmark index
129
"""
from . import darts_space, mobilenet_space, nasbench201_space
from .darts_space import darts
from .mobilenet_space import mobilenet
from .nasbench201_space import nasbench201
from .registry import SPACES, get, lookup, names, register

__all__ = ["SPACES", "get", "lookup", "names", "register", "nasbench201", "darts", "mobilenet",
           "nasbench201_space", "darts_space", "mobilenet_space"]
