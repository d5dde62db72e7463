"""graphnet: deep learning as static dataflow graphs on Numba kernels.

Build a graph of Tensors (by functions, operators or Keras-style layers), ``gn.compile`` it
into a Program, and run it for outputs and gradients. The package is built in floors, each
importing only the ones below it: ``core`` (graph, tensors, the executor) -> ``ops`` ->
``layers`` -> ``training``; ``data`` and ``detection`` beside them. See docs/architecture.md.
"""

from . import data, detection, layers, ops
from .core import initializers
from .core.errors import FeedError, GraphError, NumericsError
from .core.graph import Graph
from .core.initializers import initialize
from .core.program import Program, compile  # noqa: A004 - gn.compile is the design's name
from .core.rows import IndexedRows
from .core.tensor import Input, Parameter, Tensor, constant
from .data import batches, datasets, music, text
from .export import onnx
from .layers import regularizers
from .ops import *  # noqa: F403
from .ops import __all__ as _ops_all
from .training import callbacks, distribute, losses, metrics, optimizers, schedules
from .training.model import Model, Sequential, load_model
from .training.saving import CheckpointError

__version__ = "0.1.0"

__all__ = ["Graph", "Tensor", "Input", "Parameter", "constant", "compile", "Program", "IndexedRows",
           "GraphError", "FeedError", "NumericsError", "initialize", "initializers", "ops",
           *[n for n in _ops_all if n not in ("OPS", "Op", "Ctx")]]
__all__ += ["data", "datasets", "optimizers", "schedules", "batches", "text", "music",
            "detection"]
__all__ += ["layers", "losses", "metrics", "callbacks", "regularizers", "Model", "Sequential",
            "load_model", "CheckpointError"]
__all__ += ["onnx", "distribute"]
