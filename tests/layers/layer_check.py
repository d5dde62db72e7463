"""Finite-difference checks of a whole layer: input and weight gradients in float64."""

from collections.abc import Callable

import numpy as np

import graphnet as gn
from graphnet.testing import numeric_gradient


def check_layer_gradients(make_layer: Callable, *xs: np.ndarray, call: Callable | None = None,
                          seed: int = 0, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """``make_layer()`` (a float64 layer) called on Parameters made from ``xs`` (or
    ``call(layer, *params)``): backward of ``sum(R * out)`` against central differences, for
    every input and every trainable weight."""
    rng = np.random.default_rng(seed)
    with gn.Graph("layer_gradcheck"):
        ps = [gn.Parameter(np.asarray(x, np.float64), dtype="float64", name=f"x{i}")
              for i, x in enumerate(xs)]
        layer = make_layer()
        out = layer(ps[0] if len(ps) == 1 else ps) if call is None else call(layer, *ps)
        R = rng.normal(size=out.shape)
        loss = gn.sum(out * gn.constant(R, dtype="float64", name="R"))
    params = [*ps, *layer.trainable_weights]
    _, grads = gn.compile(loss, wrt=params)({})
    fwd = gn.compile(loss)
    for p, g in zip(params, grads):
        num = numeric_gradient(lambda: float(np.sum(fwd({}))), p.data)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"gradient of {p.name}")
