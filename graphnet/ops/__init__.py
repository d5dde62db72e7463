"""Ops, one module per family; each module's ``__all__`` lists its public functions.

Every module here but ``base`` is a family (``conv.py`` holds the conv ops) and is imported
by discovery, so a new family needs no registration. ``OPS`` maps op names to classes (for
saving graphs); the functions are also exported from ``graphnet`` itself.
"""

import sys

from ..core.program import Ctx
from ..core.tensor import Tensor
from ..kernels import export_families
from .base import OPS, Op

__all__ = ["OPS", "Op", "Ctx", *export_families(globals())]

Tensor.use_ops(sys.modules[__name__])  # operators (+, @, x[i]...) build these ops

