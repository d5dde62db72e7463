"""Embedding and PositionalEncoding layers: Keras names and layouts, PyTorch's nn.Embedding,
int Inputs in Sequential models, training, regularization and saving."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Dense, Embedding, Flatten, PositionalEncoding

pytestmark = pytest.mark.lecture2


def test_keras_names_layout_and_forward(rng):
    with gn.Graph():
        ids = gn.Input((3,), dtype="int64", name="ids")
        emb = Embedding(input_dim=6, output_dim=4, seed=2)
        y = emb(ids)
    assert y.shape == (None, 3, 4) and emb.weight_names == ["embedding/embeddings"]
    (table,) = emb.get_weights()
    assert table.shape == (6, 4) and np.abs(table).max() <= 0.05  # Keras' uniform init
    table = rng.normal(size=(6, 4)).astype(np.float32)
    emb.set_weights([table])
    xb = np.array([[5, 0, 5], [1, 2, 3]])
    np.testing.assert_array_equal(gn.compile(y)({ids: xb}), table[xb])
    assert emb.count_params() == 24
    with pytest.raises(gn.GraphError, match="positive input_dim"):
        Embedding(0, 3)


def test_matches_torch_embedding(rng):
    torch = pytest.importorskip("torch")
    with gn.Graph():
        ids = gn.Input((4,), dtype="int64")
        emb = Embedding(7, 3)
        y = emb(ids)
    ref = torch.nn.Embedding(7, 3)
    emb.set_weights([ref.weight.detach().numpy()])  # the mapping: embeddings = weight
    xb = rng.integers(0, 7, (2, 4))
    np.testing.assert_allclose(gn.compile(y)({ids: xb}),
                               ref(torch.from_numpy(xb)).detach().numpy(), rtol=1e-6)


def _tokens(rng, n=64):
    # class 1 when token 3 occurs anywhere in the 4-token sequence
    x = rng.integers(0, 5, (n, 4))
    return x, (x == 3).any(1).astype(np.int64)


def test_sequential_on_int_ids_trains_and_round_trips(rng, tmp_path):
    x, y = _tokens(rng)
    model = gn.Sequential([Embedding(5, 6, seed=0), Flatten(), Dense(2, seed=1)])
    model.compile(optimizer=gn.optimizers.Adam(0.05), loss="sparse_softmax_cross_entropy")
    hist = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    assert model.inputs[0].dtype == np.int64  # Embedding first: an int Input
    losses = hist.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    path = tmp_path / "emb.graphnet"
    model.save(path)
    again = gn.load_model(path)
    np.testing.assert_allclose(again.predict(x), model.predict(x), rtol=1e-6)
    assert type(again.layers[0]).__name__ == "Embedding"


def test_regularizer_penalizes_the_table():
    with gn.Graph():
        emb = Embedding(4, 2, embeddings_regularizer=gn.regularizers.L2(0.5),
                        embeddings_initializer="ones")
        emb(gn.Input((1,), dtype="int64"))
    (penalty,) = emb.losses
    np.testing.assert_allclose(gn.compile(penalty)({}), 0.5 * 8)


def test_positional_encoding_layer_adds_the_sinusoids(rng):
    with gn.Graph():
        x = gn.Input((5, 4))
        layer = PositionalEncoding()
        y = layer(x)
    assert y.shape == (None, 5, 4) and layer.weights == []
    xb = rng.normal(size=(2, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(gn.compile(y)({x: xb}), xb + gn.positional_encoding(5, 4),
                               rtol=1e-6)
    with gn.Graph(), pytest.raises(gn.GraphError, match=r"\(batch, time, features\)"):
        PositionalEncoding()(gn.Input((5,)))
