"""A TransformerEncoder block (no kernels of its own) on device="cuda" (simulated): forward
and every weight's gradient equal the CPU program's."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("pre", [False, True])
def test_block_forward_and_gradients_match_cpu(pre):
    rng = np.random.default_rng(0)
    with gn.Graph("enc"):
        x = gn.Input((3, 4), name="x")
        pad = gn.Input((3,), name="pad")
        layer = gn.layers.TransformerEncoder(6, 2, normalize_first=pre, activation="gelu",
                                             seed=0)
        y = layer(x, padding_mask=pad, use_causal_mask=True)
        loss = gn.sum(y * gn.constant(rng.normal(size=(2, 3, 4)).astype(np.float32)))
    layer.set_weights([rng.normal(0, 0.4, w.shape) + 1.0 * n.endswith("gamma")
                       for w, n in zip(layer.weights, layer._weight_names)])
    feeds = {x: rng.normal(size=(2, 3, 4)).astype(np.float32),
             pad: np.array([[1, 1, 1], [1, 1, 0]], np.float32)}
    params = layer.trainable_weights
    cpu_val, cpu_grads = gn.compile(loss, wrt=params)(feeds)
    val, grads = gn.compile(loss, wrt=params, device="cuda")(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5, atol=1e-5)
    for p, g, cg in zip(params, grads, cpu_grads):
        np.testing.assert_allclose(g, cg, rtol=1e-4, atol=1e-5, err_msg=p.name)
