"""Property test: random small graphs of elementwise ops and reductions get exact gradients.

Hypothesis draws a chain of steps on a float64 parameter: binary ops with a fresh parameter
whose shape broadcasts into the running value, unary ops where their domain allows (exp of
moderate values, log and sqrt of positive ones), and sum/mean/max over random axes. NumPy runs
the same chain as the forward reference; ``check_gradients`` compares backward with finite
differences. Ranks stay <= 3 so that Numba compiles few signatures.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture1

BINARY = ["add", "subtract", "multiply", "divide"]  # the same names in gn and NumPy
UNARY = ["exp", "log", "sqrt"]
REDUCE = ["sum", "mean", "max"]


def _draw_chain(data, rng):
    """Draw the arrays (parameters) and the steps; NumPy evaluates as it goes (domains)."""
    rank = data.draw(st.integers(0, 3), label="rank")
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    arrays = [rng.uniform(0.5, 1.5, shape)]
    val, steps = arrays[0], []
    for _ in range(data.draw(st.integers(1, 4), label="steps")):
        kind = data.draw(st.sampled_from(["binary", "unary", "reduce"]))
        if kind == "binary":
            name = data.draw(st.sampled_from(BINARY))
            # a shape that broadcasts into val's: leading axes dropped, some axes set to 1
            drop = data.draw(st.integers(0, val.ndim))
            pshape = tuple(1 if data.draw(st.booleans()) else d for d in val.shape[drop:])
            arrays.append(rng.uniform(0.5, 1.5, pshape))  # positive: divide is safe
            steps.append(("binary", name, len(arrays) - 1))
        elif kind == "unary":
            ok = [n for n in UNARY if (n == "exp" and val.max() < 2.0)
                  or (n != "exp" and val.min() > 0.2)]
            if not ok:
                continue
            steps.append(("unary", data.draw(st.sampled_from(ok)), None))
        else:
            name = data.draw(st.sampled_from(REDUCE))
            if val.ndim and data.draw(st.booleans()):
                axes = data.draw(st.lists(st.integers(-val.ndim, val.ndim - 1), min_size=1,
                                          max_size=val.ndim,
                                          unique_by=lambda a, n=val.ndim: a % n))
                axis = axes[0] if len(axes) == 1 else tuple(axes)
            else:
                axis = None
            steps.append(("reduce", name, (axis, data.draw(st.booleans()))))
        val = _run(np, steps[-1:], val, arrays)
    return arrays, steps, val


def _run(m, steps, val, arrays):
    """Apply ``steps`` with module ``m`` (graphnet or NumPy: the functions share names)."""
    for kind, name, arg in steps:
        f = getattr(m, name)
        if kind == "binary":
            val = f(val, arrays[arg])
        elif kind == "unary":
            val = f(val)
        else:
            val = f(val, axis=arg[0], keepdims=arg[1])
    return val


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_graphs_have_correct_forward_and_gradients(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    arrays, steps, want = _draw_chain(data, rng)

    def build(*ps):
        return _run(gn, steps, ps[0], ps)

    got = run_fn(build, *arrays, dtype="float64")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    check_gradients(build, *arrays, rtol=1e-4, atol=1e-6)
