"""Smoke tests of the Lecture 3 CNN and segmentation demos: --quick runs with checks on results."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import graphnet as gn
from demos.__main__ import available

pytestmark = pytest.mark.lecture3


@pytest.fixture(autouse=True)
def one_blas_thread():
    """One BLAS thread, as the docs' runs use: on a busy 2-core machine OpenBLAS's second
    thread makes the convolutions' small GEMMs several times slower (30 s instead of 9 s)."""
    import scipy.linalg.cython_blas  # noqa: F401 - the BLAS that numba's np.dot calls
    with threadpool_limits(1, user_api="blas"):
        yield


def quick(name: str, tmp_path: Path) -> dict:
    summary = importlib.import_module(f"demos.{name}").run(quick=True, out=tmp_path, seed=0)
    for p in summary["pictures"]:
        assert (tmp_path / Path(p).name).stat().st_size > 5_000, p
    return summary


def test_registry_lists_lecture3_demos():
    names = list(available())
    assert names.index("lecture3_cnn") < names.index("lecture3_segmentation")


def test_cnn(tmp_path):
    s = quick("lecture3_cnn", tmp_path)
    pics = {Path(p).name for p in s["pictures"]}
    assert {"lecture3_convolution.png", "lecture3_cnn_training.png",
            "lecture3_feature_maps.png", "lecture3_cnn_predictions.png"} <= pics
    if shutil.which("dot"):
        assert "lecture3_cnn_model.png" in pics
    # the two models are sized alike; even a few quick epochs beat chance (10%) clearly
    for where in ("centred", "shifted"):
        cnn, mlp = s[where]["CNN"], s[where]["MLP"]
        assert abs(cnn["params"] - mlp["params"]) < 0.1 * cnn["params"]
    assert s["centred"]["CNN"]["test_accuracy"] > 0.5
    # off-centre digits: shared local filters generalise over positions; the MLP's do not
    assert s["shifted"]["CNN"]["test_accuracy"] > s["shifted"]["MLP"]["test_accuracy"] + 0.1


def test_sobel_filter_finds_vertical_edges():
    from demos.lecture3_cnn import SOBEL
    # a bright right half: Sobel x responds on the boundary column only, with one sign
    img = np.zeros((1, 6, 6, 1), np.float32)
    img[..., 3:, 0] = 1
    with gn.Graph():
        x = gn.Input((6, 6, 1))
        e = gn.conv2d(x, gn.constant(SOBEL.astype(np.float32)))
    out = gn.compile(e)({x: img})
    assert out.shape == (1, 4, 4, 2)
    assert np.all(out[..., 1] == 0)                                # no horizontal edges
    assert np.all(out[0, :, 1:3, 0] == 4) and np.all(out[0, :, [0, 3], 0] == 0)


def test_scenes_are_seeded_and_labelled():
    from demos.lecture3_segmentation import CLASSES, scenes
    x, y = scenes(20, seed=3)
    x2, y2 = scenes(20, seed=3)
    assert x.shape == (20, 32, 32, 1) and y.shape == (20, 32, 32) and y.dtype == np.int64
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert set(np.unique(y)) == set(range(len(CLASSES)))
    # shapes are brighter than the background they cover
    assert x[..., 0][y > 0].mean() > x[..., 0][y == 0].mean() + 0.3


def test_segmentation(tmp_path):
    s = quick("lecture3_segmentation", tmp_path)
    pics = {Path(p).name for p in s["pictures"]}
    assert {"lecture3_segmentation.png", "lecture3_segmentation_training.png"} <= pics
    assert s["pixel_accuracy"] > s["background_only_accuracy"] + 0.02
    assert s["iou"]["background"] > 0.8
    assert 0 <= s["mean_iou"] <= 1 and set(s["iou"]) == {"background", "circle", "square",
                                                         "triangle"}
    # the same network without its two skip connections: fewer weights, scored the same way
    plain = s["without_skips"]
    assert plain["params"] < s["params"] and 0 <= plain["mean_iou"] <= 1
