"""A TransformerEncoder draws as one box at layer level and opens into its sub-blocks (each
labelled with its own layer and parameter count) with ``expand_nested=True``."""

import re

import pytest

import graphnet as gn
import graphnet.visualize as viz

pytestmark = pytest.mark.lecture2

SUBS = ["attention", "attention_add", "attention_norm", "ffn/intermediate", "ffn/output",
        "ffn_add", "ffn_norm"]


def _model(pre=False):
    return gn.Sequential([gn.layers.Embedding(10, 8, name="embedding"),
                          gn.layers.TransformerEncoder(16, 2, normalize_first=pre,
                                                       name="block"),
                          gn.layers.Dense(10, name="logits")], input_shape=(5,))


def test_layer_level_collapses_the_block():
    model = _model()
    src = viz.render(model, level="layer").source
    assert "embedding -> block" in src and "block -> logits" in src
    assert "<b>block</b> : <font color=\"#424242\">TransformerEncoder</font>" in src
    assert f"{model.get_layer('block').count_params():,} params" in src
    assert "cluster" not in src and not any(f"block/{s}" in src for s in SUBS)


@pytest.mark.parametrize("pre", [False, True])
def test_expanded_view_shows_the_sub_blocks(pre):
    src = viz.render(_model(pre), level="layer", expand_nested=True).source
    assert "subgraph cluster_block {" in src and 'label="block : TransformerEncoder"' in src
    assert 'subgraph "cluster_block/ffn" {' in src and re.search(r'label="?ffn"? ', src)
    for s in SUBS:
        assert re.search(rf'^\s*"block/{s}" \[label=', src, re.M), s
    # each sub-box names its own layer and counts its own weights (8 features, 16 hidden)
    for name, cls, n in (("attention", "MultiHeadAttention", 288),
                         ("attention_norm", "LayerNormalization", 16),
                         ("intermediate", "Dense", 144), ("output", "Dense", 136)):
        assert re.search(rf"<b>{name}</b> : <font[^>]*>{cls}</font>.*?{n} params", src), name
    assert "<b>attention_add</b></td>" in src  # no layer of its own: a plain add
    chain = (['"block/attention_norm" -> "block/attention"', '"block/attention" -> '
              '"block/attention_add"', '"block/ffn_norm" -> "block/ffn/intermediate"']
             if pre else
             ['"block/attention" -> "block/attention_add"', '"block/attention_add" -> '
              '"block/attention_norm"', '"block/ffn_add" -> "block/ffn_norm"',
              '"block/ffn_norm" -> logits'])
    for edge in chain:
        assert edge in src, edge
    assert '"block/ffn/intermediate" -> "block/ffn/output"' in src


def test_op_level_collapse_names_the_block():
    src = viz.render(_model(), level="op", collapse=["block"]).source
    assert re.search(r"^\s*block \[label=", src, re.M) and "block/attention" not in src
