"""Ops, one module per family; each module's ``__all__`` lists its public functions.

``OPS`` maps op names to classes (for saving graphs); the functions here are also exported
from ``graphnet`` itself.
"""

from .activation import *  # noqa: F403
from .activation import __all__ as _activation
from .base import OPS, Ctx, Op
from .dense import *  # noqa: F403
from .dense import __all__ as _dense
from .dropout import *  # noqa: F403
from .dropout import __all__ as _dropout
from .elementwise import *  # noqa: F403
from .elementwise import __all__ as _elementwise
from .loss import *  # noqa: F403
from .loss import __all__ as _loss
from .matmul import *  # noqa: F403
from .matmul import __all__ as _matmul
from .reduce import *  # noqa: F403
from .reduce import __all__ as _reduce
from .shape import *  # noqa: F403
from .shape import __all__ as _shape
from .softmax import *  # noqa: F403
from .softmax import __all__ as _softmax

__all__ = ["OPS", "Op", "Ctx", *_elementwise]
__all__ += [*_reduce, *_shape, *_matmul]
__all__ += [*_activation, *_dense, *_dropout, *_loss, *_softmax]
