"""Train a tiny model, one process or under ``mpiexec -n N``, and save what the test compares.

``python -m tests.training.mpi_scripts.fit --model mlp --out DIR [--dist] ...`` writes
``DIR/rank<k>.npz`` (the weights, the optimizer's step count and the history) on every rank.
``--fail {begin,batch,data}`` makes ``--fail-rank`` fail: raising in ``on_train_begin``
(the others wait in the first Allreduce), at the third batch, or with fewer samples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import graphnet as gn


def data(kind: str):
    rng = np.random.default_rng(0)
    if kind == "mlp":  # 97 samples, validation 18: the last batch of 16 has one sample
        x = rng.normal(size=(115, 6)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    else:  # 45 sequences: the last batch of 8 has 5 (shards of 2 and 3)
        x = rng.normal(size=(53, 5, 3)).astype(np.float32)
        y = (x[:, :, 0].sum(1) > 0).astype(np.int64)
    return x, y


def build(kind: str, device: str = "cpu", distribute=None) -> gn.Model:
    L = gn.layers
    if kind == "mlp":
        m = gn.Sequential([L.Dense(16, activation="relu", seed=1,
                                   kernel_regularizer=gn.regularizers.L2(1e-3)),
                           L.Dense(3, seed=2)], input_shape=(6,))
    else:
        m = gn.Sequential([L.LSTM(4, seed=1), L.Dense(2, seed=2)], input_shape=(5, 3))
    m.compile(optimizer=gn.optimizers.Adam(0.01), loss="sparse_softmax_cross_entropy",
              metrics=["accuracy"], device=device, distribute=distribute)
    return m


class Fail(gn.callbacks.Callback):
    def __init__(self, where: str, rank: int, me: int) -> None:
        super().__init__()
        self.where, self.rank, self.me = where, rank, me

    def on_train_begin(self, logs=None):
        if self.where == "begin" and self.me == self.rank:
            raise RuntimeError("injected failure before the first allreduce")

    def on_batch_end(self, batch, logs=None):
        if self.where == "batch" and self.me == self.rank and batch == 2:
            raise RuntimeError("injected failure at batch 2")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mlp")
    p.add_argument("--out", required=True)
    p.add_argument("--dist", action="store_true")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--initial-epoch", type=int, default=0)
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--fail", default="")
    p.add_argument("--fail-rank", type=int, default=1)
    p.add_argument("--save", default="")
    p.add_argument("--resume", default="")
    p.add_argument("--stop", action="store_true")
    p.add_argument("--poll", default="none")
    p.add_argument("--bucket-bytes", type=int, default=8 << 20)
    a = p.parse_args(argv)
    poll = None if a.poll == "none" else float(a.poll)
    dist = gn.distribute.MPIDataParallel(poll=poll, bucket_bytes=a.bucket_bytes) \
        if a.dist else None
    rank = dist.rank if dist else 0
    if a.resume:
        model = gn.load_model(a.resume, distribute=dist)
    else:
        model = build(a.model, a.device, dist)
    x, y = data(a.model)
    if a.fail == "data" and rank == a.fail_rank:
        x, y = x[:-3], y[:-3]
    cbs: list = [Fail(a.fail, a.fail_rank, rank)]
    if a.save:
        cbs.append(gn.callbacks.ModelCheckpoint(a.save, save_weights_only=False, verbose=1))
    # --stop: a min_delta no epoch beats after the first, so the second epoch stops training
    cbs.append(gn.callbacks.EarlyStopping(monitor="val_loss", patience=1 if a.stop else 50,
                                          min_delta=10.0 if a.stop else 0.0))
    batch = a.batch or (16 if a.model == "mlp" else 8)
    h = model.fit(x, y, batch_size=batch, epochs=a.epochs, initial_epoch=a.initial_epoch,
                  validation_split=0.15, seed=3, verbose=2 if a.dist else 0, callbacks=cbs)
    os.makedirs(a.out, exist_ok=True)
    np.savez(os.path.join(a.out, f"rank{rank}.npz"), *model.get_weights(),
             iterations=model.optimizer.iterations, history=json.dumps(h.history),
             buckets=dist.stats["buckets"] if dist else 0)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
