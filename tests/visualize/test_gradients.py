"""render_gradients / render_values: log colour scale, named styles, clipping, NaN flags."""

import math
import re
import shutil

import numpy as np
import pytest

import graphnet as gn
import graphnet.visualize as viz
from graphnet.visualize.examples import rnn
from graphnet.visualize.gradients import luminance, position

pytestmark = pytest.mark.lecture1


def node_line(src: str, name: str) -> str:
    q = name if re.fullmatch(r"[A-Za-z_]\w*", name) else f'"{name}"'
    return next(line for line in src.splitlines() if line.lstrip().startswith(f"{q} [label"))


def test_colors_are_monotonic_in_the_norm():
    norms = np.logspace(-9, 5, 57)
    pos = [position(n, 1e-7, 1e3) for n in norms]
    lum = [luminance(viz.grad_color(n)) for n in norms]
    assert all(a <= b for a, b in zip(pos, pos[1:])) and pos[0] == 0 and pos[-1] == 1
    inside = [lu for n, lu in zip(norms, lum) if 1e-7 <= n <= 1e3]
    assert all(a < b for a, b in zip(inside, inside[1:]))  # strictly brighter as norms grow
    assert viz.grad_color(1e-2, 1e-4, 1.0) != viz.grad_color(1e-1, 1e-4, 1.0)


def test_classify_thresholds():
    assert viz.classify(None) == "none"
    assert viz.classify(float("nan")) == "nonfinite" == viz.classify(float("inf"))
    assert viz.classify(1e-8) == "vanishing" and viz.classify(0.0) == "vanishing"
    assert viz.classify(1e4) == "exploding" and viz.classify(1.0) == "normal"
    assert viz.classify(1e-3, vanish=1e-2) == "vanishing"


def test_gradient_picture_labels_norms_and_has_a_legend(mlp):
    _, x, loss = mlp
    xb = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    dot = viz.render_gradients(loss, {x: xb})
    rep, src = dot.report, dot.source
    # the norms in the report are the norms of prog.gradients()
    prog = gn.compile(loss, wrt=[t for t in mlp[0].nodes if t.kind == "parameter"])
    prog({x: xb})
    for t, g in prog.gradients().items():
        assert rep.norms[t.name] == pytest.approx(float(np.linalg.norm(g.astype(float))),
                                                  rel=1e-6)
        assert f"‖∇‖ {viz.gradients.fmt(rep.norms[t.name])}" in node_line(src, t.name)
    assert rep.norms["sum"] == 1.0
    assert "x [label" in src and 'class=none' in node_line(src, "x")  # inputs get no gradient
    assert "legend [label=<<table" in src and "log scale" in src
    for style in ("vanishing", "exploding", "nonfinite"):
        assert f">{style}</font>" in src
    assert "njit" in src
    # brighter fill for the larger of two gradient norms
    a, b = sorted(["dense/kernel", "mul"], key=rep.norms.get)
    fill = lambda n: re.search(r'fillcolor="(#[0-9a-f]{6})"', node_line(src, n)).group(1)  # noqa
    assert luminance(fill(a)) < luminance(fill(b))


def test_nan_gradient_is_flagged():
    with gn.Graph("nan"):
        x = gn.Input((2,), name="x")
        W = gn.Parameter(np.ones(2, np.float32), name="W")
        loss = gn.sum(x * W)
    dot = viz.render_gradients(loss, {x: np.array([[1.0, np.nan]], np.float32)})
    assert "W" in dot.report.flagged()["nonfinite"]
    line = node_line(dot.source, "W")
    assert "class=nonfinite" in line and "NaN" in line and "octagon" in line
    assert "<b>nonfinite</b>" in line
    if shutil.which("dot"):  # the style names become SVG classes
        svg = viz.to_svg(dot)
        assert 'class="node nonfinite"' in svg and 'class="edge nonfinite"' in svg


def test_exploding_and_vanishing_styles():
    with gn.Graph("scale"):
        x = gn.Input((2,), name="x")
        big = gn.Parameter(np.full(2, 1e5, np.float32), name="big")
        tiny = gn.Parameter(np.full(2, 1e-9, np.float32), name="tiny")
        loss = gn.sum(x * big + x * tiny * tiny)
    dot = viz.render_gradients(loss, {x: np.ones((1, 2), np.float32)})
    src = dot.source
    assert "class=vanishing" in node_line(src, "tiny") and "<b>vanishing</b>" in src
    flagged = dot.report.flagged()
    assert "tiny" in flagged["vanishing"] and "big" not in flagged["exploding"]
    dot = viz.render_gradients(loss, {x: np.full((1, 2), 1e4, np.float32)})
    assert "class=exploding" in node_line(dot.source, "big")


@pytest.mark.lecture2
def test_vanishing_rnn_gradients_shrink_back_through_time():
    steps = 6
    _, x, target, loss = rnn(steps=steps, scale=0.25)
    rng = np.random.default_rng(1)
    feeds = {x: rng.normal(size=(4, steps, 3)), target: rng.normal(size=(4, 1))}
    dot = viz.render_gradients(loss, feeds, level="layer", vanish=1e-4)
    norms = [dot.report.norms[f"rnn/t{t}/tanh"] for t in range(steps)]
    assert all(a < b for a, b in zip(norms, norms[1:]))
    assert norms[0] < 1e-2 * norms[-1]
    src = dot.source
    assert '"rnn/t0" [label=' in src and "‖∇y‖" in src and "‖∇θ‖" in src
    rolled = viz.render_gradients(loss, feeds, level="op", roll=True).source
    assert "× 6 steps" in rolled


def test_model_gradients_show_clipping():
    model = gn.Sequential([gn.layers.Dense(5, activation="relu"), gn.layers.Dense(3)],
                          input_shape=(4,))
    model.compile(optimizer=gn.optimizers.SGD(0.1, clipnorm=1e-3),
                  loss="sparse_softmax_cross_entropy")
    rng = np.random.default_rng(0)
    xb, yb = rng.normal(size=(6, 4)).astype(np.float32), rng.integers(0, 3, 6)
    dot = viz.render_gradients(model, (xb, yb))
    rep = dot.report
    assert rep.clip == {"clipnorm": 1e-3} and math.isfinite(rep.loss)
    assert all(n == pytest.approx(1e-3) for n in rep.clipped.values())
    assert "clipped → 1.0e-03" in node_line(dot.source, "dense/kernel")
    assert "global norm" in dot.source
    layer = viz.render_gradients(model, (xb, yb), level="layer").source
    assert "‖∇θ‖" in node_line(layer, "dense")


def test_values_flag_dead_relu_units():
    with gn.Graph("dead"):
        x = gn.Input((3,), name="x")
        b = gn.Parameter(np.full(3, -100.0, np.float32), name="b")
        h = gn.relu(x + b)
        out = gn.sum(h * h)
    dot = viz.render_values(out, {x: np.ones((2, 3), np.float32)})
    line = node_line(dot.source, "relu")
    assert "class=dead" in line and "zeros 100%" in line
    assert dot.stats["add"].mean == pytest.approx(-99.0)
    assert "activation RMS" in dot.source
