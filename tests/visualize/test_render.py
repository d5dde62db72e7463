"""render: DOT content (nodes, edges, shapes, clusters), levels, rolling, files, errors."""

import re
import warnings

import numpy as np
import pytest

import graphnet as gn
import graphnet.visualize as viz
from graphnet.core.tensor import apply
from graphnet.ops.base import Op
from graphnet.visualize.examples import cnn, rnn

from .conftest import mlp_graph, needs_dot

pytestmark = pytest.mark.lecture1

MLP_NODES = ["x", "dense/kernel", "dense/bias", "dense/matmul", "dense/add", "dense/exp",
             "dense_1/kernel", "dense_1/matmul", "mul", "sum"]
MLP_EDGES = [("x", "dense/matmul", "(None, 4)"), ("dense/kernel", "dense/matmul", None),
             ("dense/matmul", "dense/add", "(None, 3)"), ("dense/bias", "dense/add", None),
             ("dense/add", "dense/exp", "(None, 3)"), ("dense/exp", "dense_1/matmul", "(None, 3)"),
             ("dense_1/kernel", "dense_1/matmul", None), ("dense_1/matmul", "mul", "(None, 2)"),
             ("mul", "sum", "(None, 2)")]


def q(name: str) -> str:
    """How DOT writes a node id."""
    return name if re.fullmatch(r"[A-Za-z_]\w*", name) else f'"{name}"'


def test_op_level_dot_has_every_node_edge_shape_and_cluster(mlp):
    _, _, loss = mlp
    src = viz.render(loss, level="op").source
    for n in MLP_NODES:
        assert re.search(rf"^\s*{re.escape(q(n))} \[label=", src, re.M), n
    for a, b, shape in MLP_EDGES:
        line = f"{q(a)} -> {q(b)}"
        assert line in src, line
        if shape is not None:
            assert f'{line} [label=" {shape}"]' in src
    assert "subgraph cluster_dense {" in src and "subgraph cluster_dense_1 {" in src
    # leaves show their own shapes; the loss is drawn at the end
    assert "(4, 3)" in src and "(3,)" in src
    # colours by kind and family: input green, parameter amber, linear purple, reduce teal
    assert 'x [label=<<b>x</b>' in src and 'fillcolor="#c8e6c9"' in src
    assert re.search(r'"dense/matmul" \[label=<<b>matmul</b>>.*fillcolor="#d1c4e9"', src)


def test_dot_is_deterministic_and_has_no_ids():
    a = viz.render(mlp_graph()[2], level="op").source
    b = viz.render(mlp_graph()[2], level="op").source
    assert a == b
    assert "0x" not in a and not re.search(r"\d{8,}", a)


def test_layer_level_boxes_show_shapes_and_params(mlp):
    _, _, loss = mlp
    src = viz.render(loss, level="layer").source
    assert "x -> dense" in src and "dense -> dense_1" in src
    assert "dense/matmul" not in src and "cluster" not in src
    box = next(line for line in src.splitlines() if line.lstrip().startswith("dense [label"))
    assert "(None, 4)" in box and "(None, 3)" in box and "15 params" in box
    assert "matmul → add → exp" in box
    flags = viz.render(loss, level="layer", show_shapes=False, show_params=False).source
    assert "params" not in flags and "(None, 4)" not in flags.split("legend")[0].split("x [")[1]


def test_model_layer_and_op_level():
    model = gn.Sequential([gn.layers.Dense(8, activation="relu"), gn.layers.Dropout(0.5),
                           gn.layers.Dense(3)], input_shape=(4,))
    src = viz.render(model, level="layer").source
    for layer in model.layers:
        assert f"<b>{layer.name}</b>" in src
        assert f"{layer.count_params():,} params" in src
    assert "Dense" in src and "Dropout" in src
    ops = viz.render(model, level="op").source
    assert 'label="dense : Dense"' in ops and "training only" in ops
    modes = viz.render_modes(model).source
    assert "inference" in modes and "dashed" in modes


@pytest.mark.lecture2
def test_rnn_rolled_and_unrolled():
    _, _, _, loss = rnn(steps=3)
    rolled = viz.render(loss, level="op", roll=True).source
    assert '"rnn/t*/tanh"' in rolled and "rnn/t1/" not in rolled
    assert re.search(r'"rnn/t\*/tanh" -> "rnn/t\*/matmul_1" \[label=" t−1 .*constraint=false',
                     rolled)
    assert "× 3 steps" in rolled and "[:, t]" in rolled
    unrolled = viz.render(loss, level="op", roll=False).source
    for t in range(3):
        assert f"subgraph \"cluster_rnn/t{t}\"" in unrolled
        assert f'"rnn/t{t}/tanh"' in unrolled
    assert '"rnn/t0/tanh" -> "rnn/t1/matmul_1"' in unrolled
    layer_rolled = viz.render(loss, level="layer").source
    assert re.search(r'rnn -> rnn \[label=" t−1 \(None, 4\)"', layer_rolled)
    layer_unrolled = viz.render(loss, level="layer", roll=False).source
    assert '"rnn/t0" -> "rnn/t1"' in layer_unrolled and "shared by every step" in layer_unrolled


@pytest.mark.lecture2
def test_large_graph_warns_and_collapse_boxes_scopes():
    _, _, _, loss = rnn(steps=6)
    with pytest.warns(viz.LargeGraphWarning, match="collapse"):
        viz.render(loss, level="op", roll=False, max_nodes=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        src = viz.render(loss, level="op", roll=False, collapse=["rnn"], max_nodes=20).source
    assert '"rnn/t0/tanh"' not in src and re.search(r"^\s*rnn \[label=<<table", src, re.M)


@pytest.mark.lecture3
def test_cnn_layer_boxes():
    _, _, _, loss = cnn()
    src = viz.render(loss, level="layer").source
    for box in ("conv", "maxpool", "flatten", "dense"):
        assert re.search(rf"^\s*{box} \[label=<<table", src, re.M)
    assert "(None, 4, 4, 6)" in src and "30 params" in src


@needs_dot
def test_svg_png_pdf_and_source_files(mlp, tmp_path):
    _, _, loss = mlp
    viz.render(loss, tmp_path / "m.svg", level="op")
    viz.render(loss, tmp_path / "m.png", level="layer", dpi=50)
    viz.render(loss, tmp_path / "m.pdf")
    viz.render(loss, tmp_path / "m.gv")
    assert "<svg" in (tmp_path / "m.svg").read_text()
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "m.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "m.gv").read_text().startswith("digraph")
    with pytest.raises(ValueError, match="suffix"):
        viz.render(loss, tmp_path / "m.xyz")


def test_missing_dot_writes_source_and_says_how_to_install(mlp, tmp_path, monkeypatch):
    _, _, loss = mlp
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(viz.GraphvizNotFound) as err:
        viz.render(loss, tmp_path / "pic.png", level="op")
    msg = str(err.value)
    assert "apt-get install graphviz" in msg and "brew install graphviz" in msg
    assert "pic.gv" in msg and err.value.source_path == tmp_path / "pic.gv"
    assert (tmp_path / "pic.gv").read_text() == viz.render(loss, level="op").source
    assert not (tmp_path / "pic.png").exists()
    # Jupyter falls back to text instead of raising
    bundle = viz.mimebundle(loss)
    assert "image/svg+xml" not in bundle and "Graphviz" in bundle["text/plain"]


class _NumpyIdentity(Op):
    """y = x, computed by NumPy on the host (a fallback, for the badge test)."""
    name = "test_numpy_identity"
    badge = "numpy"

    def infer(self, x):
        return x.shape, x.dtype

    def forward(self, ctx, x):
        return np.array(x)

    def backward(self, ctx, g, y, x):
        return (g,)


def test_kernel_badges_and_loud_fallbacks(mlp):
    _, x, loss = mlp
    prog = gn.compile(loss)
    src = viz.render(prog, level="op").source
    assert src.count(">njit</font>") == 6  # one per op node, none on leaves
    with gn.Graph("fb"):
        a = gn.Input((2,), name="a")
        y = gn.exp(apply(_NumpyIdentity(), [a]))
    with pytest.warns(viz.FallbackKernelWarning, match="test_numpy_identity"):
        src = viz.render(y, level="op", badges=True).source
    assert "numpy fallback" in src and "cuda.jit" not in src
    assert "cuda.jit" in viz.render(exp_only(), level="op", device="cuda").source


def exp_only():
    with gn.Graph("cuda_badge"):
        return gn.exp(gn.Input((2,), name="a"))


def test_shape_error_drawn_at_the_failed_node():
    def build():
        x = gn.Input((4,), name="x")
        with gn.Graph.current().name_scope("dense"):
            W = gn.Parameter(shape=(3, 2), name="kernel", seed=0)
            return gn.exp(gn.matmul(x, W))

    dot = viz.render_error(build)
    src = dot.source
    assert dot.failed["op"] == "matmul" and dot.failed["node"] == "dense/matmul"
    assert '"dense/matmul (failed)"' in src and "shape error" in src
    assert re.search(r'x -> "dense/matmul \(failed\)" \[label=" \(None, 4\) float32  \(input 0\)"'
                     r'.*color="#d50000"', src)
    assert '"dense/kernel" -> "dense/matmul (failed)"' in src
    # a caught error can be drawn too
    with gn.Graph("e") as g:
        a = gn.Input((2,), name="a")
        b = gn.Input((3,), name="b")
        with pytest.raises(gn.GraphError) as err:
            gn.add(a, b)
    src = viz.draw_shape_error(err.value, graph=g).source
    assert '"add (failed)"' in src and "a -> " in src and "b -> " in src
    # without an error the built graph is drawn
    ok = viz.render_error(lambda: gn.exp(gn.Input((2,), name="z")))
    assert "failed" not in ok.source and "exp" in ok.source


@needs_dot
def test_jupyter_displays_svg(mlp):
    g, x, loss = mlp
    for obj in (loss, g):
        bundle = obj._repr_mimebundle_()
        assert bundle["image/svg+xml"].lstrip().startswith("<?xml") or "<svg" in bundle[
            "image/svg+xml"]
        assert bundle["text/plain"] == repr(obj)
    model = gn.Sequential([gn.layers.Dense(2)], input_shape=(3,))
    assert "<svg" in model._repr_mimebundle_()["image/svg+xml"]


def _nested():
    with gn.Graph("nest") as g:
        h = gn.Input((4,), name="x")
        with g.name_scope("encoder"):
            for _ in range(3):
                with g.name_scope("block"):
                    h = gn.relu(h @ gn.Parameter(shape=(4, 4), name="kernel", seed=0))
        return gn.sum(h)


def test_expand_nested_and_repeated_blocks():
    y = _nested()
    flat = viz.render(y).source
    assert re.search(r"^\s*encoder \[label=<<table", flat, re.M) and "48 params" in flat
    nested = viz.render(y, expand_nested=True).source
    assert "subgraph cluster_encoder {" in nested
    assert '"encoder/block" -> "encoder/block_1"' in nested and "16 params" in nested
    with gn.Graph("rep") as g:
        h = gn.Input((4,), name="x")
        for _ in range(3):
            with g.name_scope("block"):
                h = gn.relu(h @ gn.Parameter(shape=(4, 4), name="kernel", seed=0))
        y = gn.sum(h)
    rep = viz.render(y, collapse="repeats").source
    assert '"block ×3" -> "block ×3" [label=" previous block (None, 4)"' in rep
    assert "rolled: 3 repeated blocks" in rep and "block_1" not in rep
    ops = viz.render(y, level="op", collapse="repeats").source
    assert '"block ×3/t*/relu"' in ops and "× 3 blocks" in ops


def test_inference_mode_greys_out_dropout():
    model = gn.Sequential([gn.layers.Dense(4), gn.layers.Dropout(0.5), gn.layers.Dense(2)],
                          input_shape=(3,))
    infer = viz.render(model, level="op", mode="infer").source
    line = next(s for s in infer.splitlines() if '"dropout/dropout" [label' in s)
    assert "dashed" in line and 'fillcolor="#ffffff"' in line
    assert ' inference"' not in viz.render(model, level="op", mode="train").source
    with pytest.raises(ValueError, match="mode"):
        viz.render(model, mode="eval")
