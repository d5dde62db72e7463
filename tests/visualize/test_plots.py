"""plots: every figure function returns a Figure, draws what it says, and saves."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

import graphnet as gn  # noqa: E402
from graphnet.visualize import plots  # noqa: E402

pytestmark = pytest.mark.lecture1


def _saved(fig, path):
    assert isinstance(fig, Figure)
    assert path.exists() and path.stat().st_size > 1000


def test_history_with_early_stopping_point(tmp_path):
    h = gn.callbacks.History()
    h.on_train_begin()
    for e, (lo, vl) in enumerate([(1.0, 1.1), (0.6, 0.8), (0.4, 0.7), (0.3, 0.75), (0.2, 0.9)]):
        h.on_epoch_end(e, {"loss": lo, "val_loss": vl, "accuracy": 0.5 + e / 10})
    fig = plots.plot_history(h, path=tmp_path / "h.png")
    _saved(fig, tmp_path / "h.png")
    loss_ax = fig.axes[0]
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert {"loss", "val_loss", "best (epoch 2)"} <= set(labels)
    es = gn.callbacks.EarlyStopping(patience=2)
    es.best_epoch, es.stopped_epoch = 2, 4
    fig = plots.plot_history(h.history, metrics=["loss"], early_stopping=es)
    assert "stopped (epoch 4)" in [line.get_label() for line in fig.axes[0].get_lines()]


def test_gradient_norms_per_layer_per_step_and_heatmap(tmp_path):
    fig = plots.plot_gradient_norms({"dense": [1, 0.5, 0.1], "dense_1": [2, 1, 0.3]},
                                    path=tmp_path / "g.png")
    _saved(fig, tmp_path / "g.png")
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].get_lines()) >= 2
    fig = plots.plot_gradient_norms(np.logspace(-9, 0, 10))
    assert "vanishing" in [t.get_text().strip() for t in fig.axes[0].texts]
    fig = plots.plot_gradient_norms(np.logspace(-6, 0, 20).reshape(4, 5))
    assert len(fig.axes) == 2  # heat map and its colour bar
    with pytest.raises(ValueError):
        plots.plot_gradient_norms(np.ones((2, 2, 2)))


def test_image_grids_filters_and_feature_maps(tmp_path):
    rng = np.random.default_rng(0)
    fig = plots.image_grid(rng.random((5, 8, 8)), titles=list("abcde"), ncols=3,
                           path=tmp_path / "i.png")
    _saved(fig, tmp_path / "i.png")
    assert len(fig.axes) == 6 and sum(bool(a.images) for a in fig.axes) == 5
    assert len(plots.image_grid(rng.random((2, 6, 6, 3))).axes) == 2
    fig = plots.conv_filters(rng.normal(size=(3, 3, 1, 4)))
    assert sum(bool(a.images) for a in fig.axes) == 4
    fig = plots.feature_maps(rng.random((1, 6, 6, 3)))
    assert [a.get_title() for a in fig.axes if a.images] == ["channel 0", "channel 1",
                                                             "channel 2"]


@pytest.mark.lecture2
def test_attention_map(tmp_path):
    w = np.full((3, 4), 0.25)
    fig = plots.attention_map(w, queries=["a", "b", "c"], keys=list("wxyz"),
                              path=tmp_path / "a.png")
    _saved(fig, tmp_path / "a.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list("wxyz")
    assert len(ax.texts) == 12  # each weight written in its cell


@pytest.mark.lecture3
def test_segmentation_overlay_and_boxes(tmp_path):
    img = np.linspace(0, 1, 64).reshape(8, 8)
    mask = np.zeros((8, 8), int)
    mask[2:6, 2:6] = 1
    fig = plots.segmentation_overlay(img, mask, class_names=["background", "cat"],
                                     path=tmp_path / "s.png")
    _saved(fig, tmp_path / "s.png")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["background", "cat"]
    fig = plots.boxes_on_image(img, [[1, 1, 5, 6], [0, 0, 2, 2]], labels=[0, 1],
                               scores=[0.9, 0.4], class_names=["cat", "dog"],
                               path=tmp_path / "b.png")
    _saved(fig, tmp_path / "b.png")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 and ax.patches[0].get_width() == 4
    assert [t.get_text() for t in ax.texts] == ["cat 0.90", "dog 0.40"]
