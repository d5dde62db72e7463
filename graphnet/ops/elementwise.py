"""Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div, pow, neg, exp, log,
sqrt, abs; and ``stop_gradient``, the identity that backprop treats as a constant.

Backward of a broadcast input sums the gradient over the axes broadcasting added
(``be.sum_to``), as in every autodiff system.
"""

from __future__ import annotations

from ..core.tensor import Tensor, apply
from .base import Op, broadcast_shapes, same_float_dtype

__all__ = ["add", "subtract", "multiply", "divide", "power", "negative", "exp", "log", "sqrt",
           "abs", "stop_gradient"]


class _Binary(Op):
    def infer(self, a, b):
        return broadcast_shapes(a.shape, b.shape), same_float_dtype(a, b)

    @staticmethod
    def grads(ctx, a, b, da, db) -> tuple:
        """``(da(), db())`` each summed back to its input's shape; an input whose gradient
        nobody wants is skipped (the constant 2 of ``x ** 2`` costs nothing)."""
        be = ctx.be
        return (be.sum_to(da(), a.shape) if ctx.wants(0) else None,
                be.sum_to(db(), b.shape) if ctx.wants(1) else None)


class Add(_Binary):
    """y = a + b;  da = g, db = g (each summed back to its own shape)."""
    name = "add"

    def forward(self, ctx, a, b):
        return ctx.be.add(a, b)

    def backward(self, ctx, g, y, a, b):
        return self.grads(ctx, a, b, lambda: g, lambda: g)


class Sub(_Binary):
    """y = a - b;  da = g, db = -g."""
    name = "sub"

    def forward(self, ctx, a, b):
        return ctx.be.sub(a, b)

    def backward(self, ctx, g, y, a, b):
        return self.grads(ctx, a, b, lambda: g, lambda: ctx.be.neg(g))


class Mul(_Binary):
    """y = a * b;  da = g b, db = g a."""
    name = "mul"

    def forward(self, ctx, a, b):
        return ctx.be.mul(a, b)

    def backward(self, ctx, g, y, a, b):
        be = ctx.be
        return self.grads(ctx, a, b, lambda: be.mul(g, b), lambda: be.mul(g, a))


class Div(_Binary):
    """y = a / b;  da = g / b, db = -g a / b^2."""
    name = "div"

    def forward(self, ctx, a, b):
        return ctx.be.div(a, b)

    def backward(self, ctx, g, y, a, b):
        be = ctx.be
        return self.grads(ctx, a, b, lambda: be.div(g, b), lambda: be.div_grad_b(g, a, b))


class Pow(_Binary):
    """y = a ** b;  da = g b a^(b-1), db = g y log a (0 where a <= 0)."""
    name = "pow"

    def forward(self, ctx, a, b):
        return ctx.be.power(a, b)

    def backward(self, ctx, g, y, a, b):
        be = ctx.be
        return self.grads(ctx, a, b, lambda: be.power_grad_a(g, a, b, y),
                          lambda: be.power_grad_b(g, a, y))


class _Unary(Op):
    def infer(self, a):
        return a.shape, same_float_dtype(a)


class Neg(_Unary):
    """y = -a;  da = -g."""
    name = "neg"

    def forward(self, ctx, a):
        return ctx.be.neg(a)

    def backward(self, ctx, g, y, a):
        return (ctx.be.neg(g),)


class Exp(_Unary):
    """y = e^a;  da = g y."""
    name = "exp"

    def forward(self, ctx, a):
        return ctx.be.exp(a)

    def backward(self, ctx, g, y, a):
        return (ctx.be.mul(g, y),)


class Log(_Unary):
    """y = ln a;  da = g / a."""
    name = "log"

    def forward(self, ctx, a):
        return ctx.be.log(a)

    def backward(self, ctx, g, y, a):
        return (ctx.be.div(g, a),)


class Sqrt(_Unary):
    """y = sqrt(a);  da = g / (2 y)."""
    name = "sqrt"

    def forward(self, ctx, a):
        return ctx.be.sqrt(a)

    def backward(self, ctx, g, y, a):
        return (ctx.be.sqrt_grad(g, y),)


class Abs(_Unary):
    """y = |a|;  da = g sign(a) (0 at the kink)."""
    name = "abs"

    def forward(self, ctx, a):
        return ctx.be.absolute(a)

    def backward(self, ctx, g, y, a):
        return (ctx.be.abs_grad(g, a),)


def add(x, y) -> Tensor:
    """x + y with broadcasting."""
    return apply(Add(), [x, y])


def subtract(x, y) -> Tensor:
    """x - y with broadcasting."""
    return apply(Sub(), [x, y])


def multiply(x, y) -> Tensor:
    """x * y with broadcasting."""
    return apply(Mul(), [x, y])


def divide(x, y) -> Tensor:
    """x / y with broadcasting."""
    return apply(Div(), [x, y])


def power(x, y) -> Tensor:
    """x ** y with broadcasting."""
    return apply(Pow(), [x, y])


def negative(x) -> Tensor:
    return apply(Neg(), [x])


def exp(x) -> Tensor:
    return apply(Exp(), [x])


def log(x) -> Tensor:
    return apply(Log(), [x])


class StopGradient(Op):
    """y = a; no gradient flows back to a (TensorFlow's ``stop_gradient``, PyTorch's
    ``detach``): what reads y sees a constant, e.g. a tensor used only for its shape."""
    name = "stop_gradient"

    def infer(self, a):
        return a.shape, a.dtype

    def forward(self, ctx, a):
        return a

    def backward(self, ctx, g, y, a):
        return (None,)


def sqrt(x) -> Tensor:
    return apply(Sqrt(), [x])


def stop_gradient(x) -> Tensor:
    """``x`` itself, seen by backprop as a constant: no gradient reaches ``x`` through it."""
    return apply(StopGradient(), [x])


def abs(x) -> Tensor:  # noqa: A001 - NumPy's name
    return apply(Abs(), [x])
