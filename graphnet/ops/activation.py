"""Activation functions: sigmoid, tanh, relu, leaky_relu, elu, gelu.

One small op class per activation (so drawings name the node), all running one kernel family:
``be.activation(x, kind, alpha)`` forward and ``be.activation_grad(g, x, y, kind, alpha)``
backward, the same scalar math the dense op fuses after its GEMM.
"""

from __future__ import annotations

from typing import ClassVar

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply
from .base import Op, same_float_dtype

__all__ = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu"]

# The activation names the dense op and the kernels know ("linear" is the identity).
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu")


def check_fused(act: str, op: str) -> None:
    """The GraphError for an activation a fused node (dense, conv) cannot apply."""
    if act not in ACTIVATIONS:
        hint = f"; apply gn.softmax to the {op} output" if act == "softmax" else ""
        raise GraphError(f"unknown activation {act!r}{hint}; {op} takes one of "
                         f"{list(ACTIVATIONS)} or None")


class _Activation(Op):
    """y = act(x) elementwise;  dx = g act'(x), with act' read from x and y."""

    family = "activation"
    kind: ClassVar[str] = ""
    alpha = 0.0  # the slope or scale of leaky_relu and elu; set per node through attrs

    def infer(self, x):
        return x.shape, same_float_dtype(x)

    def forward(self, ctx, x):
        return ctx.be.activation(x, self.kind, self.alpha)

    def backward(self, ctx, g, y, x):
        return (ctx.be.activation_grad(g, x, y, self.kind, self.alpha),)


class Sigmoid(_Activation):
    """y = 1 / (1 + e^-x) (computed from e^-|x|, stable for large |x|);  dx = g y (1 - y)."""
    name = kind = "sigmoid"


class Tanh(_Activation):
    """y = tanh x;  dx = g (1 - y^2)."""
    name = kind = "tanh"


class Relu(_Activation):
    """y = max(x, 0);  dx = g [x > 0] (0 at the kink)."""
    name = kind = "relu"


class LeakyRelu(_Activation):
    """y = x for x > 0, alpha x otherwise;  dx = g (1 or alpha)."""
    name = kind = "leaky_relu"


class Elu(_Activation):
    """y = x for x > 0, alpha (e^x - 1) otherwise;  dx = g (1 or y + alpha)."""
    name = kind = "elu"


class Gelu(_Activation):
    """y = x Phi(x) = x/2 (1 + erf(x / sqrt 2)) (exact, torch's default);
    dx = g (Phi(x) + x phi(x))."""
    name = kind = "gelu"


def sigmoid(x) -> Tensor:
    """The logistic function 1 / (1 + e^-x)."""
    return apply(Sigmoid(), [x])


def tanh(x) -> Tensor:
    """The hyperbolic tangent."""
    return apply(Tanh(), [x])


def relu(x) -> Tensor:
    """max(x, 0)."""
    return apply(Relu(), [x])


def leaky_relu(x, alpha: float = 0.2) -> Tensor:
    """x for x > 0, ``alpha * x`` otherwise (tf.nn.leaky_relu's default slope 0.2)."""
    return apply(LeakyRelu(alpha=float(alpha)), [x])


def elu(x, alpha: float = 1.0) -> Tensor:
    """x for x > 0, ``alpha * (e^x - 1)`` otherwise."""
    return apply(Elu(alpha=float(alpha)), [x])


def gelu(x) -> Tensor:
    """The Gaussian error linear unit x Phi(x), exact erf form."""
    return apply(Gelu(), [x])


def activate(x, activation: str | None) -> Tensor:
    """Apply an activation given by name (None or "linear": x itself; "softmax" too), the
    way layers resolve their ``activation=`` argument."""
    if activation is None or activation == "linear":
        return x
    if activation in ("softmax", "log_softmax"):
        from .softmax import log_softmax, softmax
        return softmax(x) if activation == "softmax" else log_softmax(x)
    fn = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu,
          "elu": elu, "gelu": gelu}.get(activation)
    if fn is None:
        raise GraphError(f"unknown activation {activation!r}; choose one of "
                         f"{[*ACTIVATIONS, 'softmax', 'log_softmax']} or None")
    return fn(x)
