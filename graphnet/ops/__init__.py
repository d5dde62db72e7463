"""Ops, one module per family; each module's ``__all__`` lists its public functions.

``OPS`` maps op names to classes (for saving graphs); the functions here are also exported
from ``graphnet`` itself.
"""

from .base import OPS, Ctx, Op
from .elementwise import *  # noqa: F403
from .elementwise import __all__ as _elementwise

__all__ = ["OPS", "Op", "Ctx", *_elementwise]
