"""Keras-style layers: each builds a subgraph under its own name scope and owns Parameters.

One module per layer family (``core``, ``conv``, ``recurrent``...), each listing its layers in
``__all__``; they are imported by discovery, so a new family needs no registration here.
"""

from ..kernels import export_families
from .base import LAYERS, Layer, deserialize, serialize

# regularizers are no layer family: gn.regularizers (the layers use them)
__all__ = ["Layer", "LAYERS", "serialize", "deserialize",
           *export_families(globals(), skip=("regularizers",))]
