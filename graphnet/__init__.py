"""graphnet: deep learning as static dataflow graphs on Numba kernels.

Build a graph of Tensors (by functions, operators or Keras-style layers), ``gn.compile`` it
into a Program, and run it for outputs and gradients. See docs/architecture.md.
"""

from . import data, datasets, detection, music, ops, optimizers, schedules, text
from .data import batches
from .errors import FeedError, GraphError, NumericsError
from .graph import Graph
from .initializers import initialize
from .ops import *  # noqa: F403
from .ops import __all__ as _ops_all
from .program import Program, compile  # noqa: A004 - gn.compile is the design's name
from .tensor import Input, Parameter, Tensor, constant

__version__ = "0.1.0"

__all__ = ["Graph", "Tensor", "Input", "Parameter", "constant", "compile", "Program",
           "GraphError", "FeedError", "NumericsError", "initialize", "ops",
           *[n for n in _ops_all if n not in ("OPS", "Op", "Ctx")]]
__all__ += ["data", "datasets", "optimizers", "schedules", "batches", "text", "music",
           "detection"]
from . import callbacks, layers, losses, metrics, regularizers  # noqa: E402 - Keras-style API
from .model import Model, Sequential, load_model  # noqa: E402
from .saving import CheckpointError  # noqa: E402

__all__ += ["layers", "losses", "metrics", "callbacks", "regularizers", "Model", "Sequential",
            "load_model", "CheckpointError"]
