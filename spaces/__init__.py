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
from . import darts          # callable: darts(C=36, layers=20) -> Space; DARTS_V2, genotypes
register("darts")(darts.darts)
from . import mobilenet      # callable: mobilenet(num_classes=1000) -> Space; MOBILENET_V2
register("mobilenet", "mobilenet_v2")(mobilenet.mobilenet)

__all__ = ["get", "names", "register", "nasbench201"]
__all__ += ["darts", "mobilenet"]
