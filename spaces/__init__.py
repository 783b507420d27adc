"""symnas.spaces: standard search spaces as symbolic programs, by name.

Example::

    import symnas as sn
    space = sn.spaces.nasbench201()              # or sn.spaces.get("nasbench201", C=8, N=1)
    sn.spaces.names()                            # ['nasbench201', ...]
"""
from .registry import get, names, register
from . import nasbench201   # a callable module: nasbench201(C=16, N=5) -> Space

register("nasbench201", "nb201", "nas_bench_201")(nasbench201.nasbench201)
# Other spaces register here (one import + register line each):

__all__ = ["get", "names", "register", "nasbench201"]
