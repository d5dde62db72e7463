"""Ops, one module per family; each module's ``__all__`` lists its public functions.

Every module here but ``base`` is a family (``conv.py`` holds the conv ops) and is imported
by discovery, so a new family needs no registration. ``OPS`` maps op names to classes (for
saving graphs); the functions are also exported from ``graphnet`` itself.
"""

from ..kernels import export_families
from .base import OPS, Ctx, Op

__all__ = ["OPS", "Op", "Ctx", *export_families(globals())]
