"""save / load_model / save_weights: exact round trips, atomic writes, refusing bad files."""

import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Concatenate, Dense, Dropout

pytestmark = pytest.mark.lecture1


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(30, 5)).astype(np.float32), rng.integers(0, 3, 30)


def _trained(data, hidden=8):
    x, y = data
    m = gn.Sequential([Dense(hidden, activation="relu", kernel_regularizer=gn.regularizers.L2(1e-3),
                             seed=1),
                       Dropout(0.2, seed=4), Dense(3, activation="softmax", seed=2)],
                      input_shape=(5,), name="clf")
    m.compile(optimizer=gn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    m.fit(x, y, epochs=2, batch_size=10, verbose=0, seed=0)
    return m


def _same_weights(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_save_load_round_trips_predictions_exactly(data, tmp_path):
    x, y = data
    m = _trained(data)
    path = tmp_path / "m.graphnet"
    m.save(path)
    assert zipfile.is_zipfile(path)
    loaded = gn.load_model(path)
    assert isinstance(loaded, gn.Sequential) and loaded.name == "clf"
    assert [type(la).__name__ for la in loaded.layers] == ["Dense", "Dropout", "Dense"]
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))
    _same_weights(loaded.get_weights(), m.get_weights())
    # compiled as saved: the same optimizer kind, loss (with the L2 penalty) and metrics
    assert isinstance(loaded.optimizer, gn.optimizers.Adam)
    np.testing.assert_allclose(loaded.evaluate(x, y), m.evaluate(x, y), rtol=1e-6)
    loaded.fit(x, y, epochs=1, verbose=0)  # and it trains on


def test_functional_model_round_trip(tmp_path, rng):
    with gn.Graph():
        a, b = gn.Input((3,), name="a"), gn.Input((2,), name="b")
        shared = Dense(2, seed=1)
        out = Dense(1, seed=2)(Concatenate()([shared(a), b * 2.0]))
    # one branch uses an op outside any layer: saving the architecture must refuse it
    m = gn.Model([a, b], out)
    with pytest.raises(gn.GraphError, match="outside any layer"):
        m.save(tmp_path / "bad.graphnet")
    assert not os.listdir(tmp_path)
    with gn.Graph():
        a, b = gn.Input((3,), name="a"), gn.Input((3,), name="b")
        shared = Dense(2, seed=1)
        out = Dense(1, seed=2)(Concatenate()([shared(a), shared(b)]))
    m = gn.Model([a, b], out, name="siamese")
    xa, xb = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    m.save(tmp_path / "f.graphnet")
    loaded = gn.load_model(tmp_path / "f.graphnet")
    assert [la.name for la in loaded.layers] == ["dense", "concatenate", "dense_1"]
    assert len(loaded.layers[0].calls) == 2  # the shared layer is called twice again
    np.testing.assert_array_equal(loaded.predict([xa, xb]), m.predict([xa, xb]))


def test_save_weights_and_load_weights(data, tmp_path):
    m = _trained(data)
    m.save_weights(tmp_path / "w.graphnet")
    other = _trained(data)
    other.set_weights([w + 1 for w in other.get_weights()])
    other.load_weights(tmp_path / "w.graphnet")
    _same_weights(other.get_weights(), m.get_weights())
    with pytest.raises(gn.CheckpointError, match="weights only"):
        gn.load_model(tmp_path / "w.graphnet")


def test_truncated_file_raises_and_loads_nothing(data, tmp_path):
    m = _trained(data)
    path = tmp_path / "m.graphnet"
    m.save(path)
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 30, 100):
        bad = tmp_path / f"cut{cut}.graphnet"
        bad.write_bytes(raw[:cut])
        with pytest.raises(gn.CheckpointError, match="truncated or corrupt"):
            gn.load_model(bad)
        target = _trained(data)
        before = target.get_weights()
        with pytest.raises(gn.CheckpointError):
            target.load_weights(bad)
        _same_weights(target.get_weights(), before)


def test_corrupt_member_is_detected(data, tmp_path):
    m = _trained(data)
    path = tmp_path / "m.graphnet"
    m.save(path)
    raw = bytearray(path.read_bytes())
    i = raw.index(b"\x93NUMPY") + 200  # flip bytes inside the first weight array's data
    raw[i:i + 4] = b"\xff\xfe\xfd\xfc"
    path.write_bytes(bytes(raw))
    with pytest.raises(gn.CheckpointError, match="corrupt"):
        gn.load_model(path)


def test_mismatched_checkpoint_names_every_difference(data, tmp_path):
    m = _trained(data, hidden=8)
    m.save(tmp_path / "m8.graphnet")
    other = _trained(data, hidden=6)
    before = other.get_weights()
    with pytest.raises(gn.CheckpointError,
                       match=r"shapes differ.*dense/kernel.*\(5, 6\).*\(5, 8\).*Nothing was"):
        other.load_weights(tmp_path / "m8.graphnet")
    _same_weights(other.get_weights(), before)
    renamed = gn.Sequential([Dense(3, name="head")], input_shape=(5,))
    with pytest.raises(gn.CheckpointError, match=r"missing from the file: \['head/kernel'"):
        renamed.load_weights(tmp_path / "m8.graphnet")


def test_not_a_model_file(tmp_path):
    junk = tmp_path / "junk.graphnet"
    junk.write_bytes(b"hello, world" * 10)
    with pytest.raises(gn.CheckpointError, match="truncated or corrupt"):
        gn.load_model(junk)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("x.txt", "hi")
    with pytest.raises(gn.CheckpointError, match="not a graphnet model file"):
        gn.load_model(tmp_path / "other.zip")
    with pytest.raises(gn.CheckpointError, match="no model file"):
        gn.load_model(tmp_path / "missing.graphnet")


def test_failed_save_leaves_the_old_file_untouched(data, tmp_path, monkeypatch):
    m = _trained(data)
    path = tmp_path / "m.graphnet"
    m.save(path)
    old = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np.lib.format, "write_array", crash)
    m.set_weights([w * 0 for w in m.get_weights()])
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.graphnet"]  # no temporary file left behind


@pytest.mark.parametrize("optimizer", [gn.optimizers.Adam(0.01),
                                       gn.optimizers.SGD(0.05, momentum=0.9),
                                       gn.optimizers.RMSprop(0.01, momentum=0.5)])
def test_training_resumes_exactly_after_load(data, tmp_path, optimizer):
    # the optimizer's step count and slots travel with the model: a loaded model's next
    # epoch is the one the original would have run (without them, Adam restarts its moments)
    x, y = data
    m = gn.Sequential([Dense(8, activation="relu", seed=1), Dense(3, seed=2)], input_shape=(5,))
    m.compile(optimizer=optimizer, loss="sparse_softmax_cross_entropy")
    m.fit(x, y, epochs=2, batch_size=10, verbose=0, seed=0, shuffle=False)
    m.save(tmp_path / "m.graphnet")
    with zipfile.ZipFile(tmp_path / "m.graphnet") as zf:
        assert any(n.startswith("optimizer/") for n in zf.namelist())
    back = gn.load_model(tmp_path / "m.graphnet")
    assert back.optimizer.iterations == m.optimizer.iterations == 6
    m.fit(x, y, epochs=1, batch_size=10, verbose=0, seed=1, shuffle=False)
    back.fit(x, y, epochs=1, batch_size=10, verbose=0, seed=1, shuffle=False)
    for u, v in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


def test_untrained_model_saves_no_optimizer_state(data, tmp_path):
    m = gn.Sequential([Dense(3, seed=2)], input_shape=(5,))
    m.compile(optimizer="adam", loss="sparse_softmax_cross_entropy")
    m.save(tmp_path / "m.graphnet")
    with zipfile.ZipFile(tmp_path / "m.graphnet") as zf:
        assert not any(n.startswith("optimizer/") for n in zf.namelist())
    assert gn.load_model(tmp_path / "m.graphnet").optimizer.iterations == 0


# -- killed saves: the previous checkpoint stays, the debris goes -------------------------

# A child process that starts saving a model (about 0.5 MB of weights) to argv[1] and stalls
# mid-write, after the manifest and the first weight are in its temporary file, until killed.
_CHILD = r"""
import sys, time
import numpy as np
import graphnet as gn
from graphnet.layers import Dense

path, seed = sys.argv[1], int(sys.argv[2])
m = gn.Sequential([Dense(256, seed=seed), Dense(3, seed=seed)], input_shape=(512,), name="big")
real, calls = np.lib.format.write_array, []

def stalled(*args, **kwargs):
    real(*args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
        print("mid-write", flush=True)
        time.sleep(120)

np.lib.format.write_array = stalled
m.save(path)
"""


def _big(seed):
    return gn.Sequential([Dense(256, seed=seed), Dense(3, seed=seed)], input_shape=(512,),
                         name="big")


def _start_saving(path, seed):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(seed)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_zombie(pid, timeout=30.0):
    from graphnet.core import files
    end = time.monotonic() + timeout
    while (files._stat(pid) or ("Z",))[0] != "Z" and time.monotonic() < end:
        time.sleep(0.01)


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL and pids as on POSIX")
def test_sigkilled_saves_leave_the_checkpoint_and_no_debris(tmp_path):
    path = tmp_path / "m.graphnet"
    m = _big(0)
    m.save(path)
    old = path.read_bytes()
    # three saves of m.graphnet and one of another target, all stalled mid-write
    kids = [_start_saving(path, s) for s in (1, 2, 3)] + \
        [_start_saving(tmp_path / "ck-03.graphnet", 4)]
    try:
        for k in kids:
            line = k.stdout.readline().strip()
            assert line == "mid-write", k.stderr.read() if k.poll() is not None else line
        first, second, live, other = kids
        for k in (first, second, other):
            os.kill(k.pid, signal.SIGKILL)  # SIGKILL: no handler or finally runs
        first.wait()
        other.wait()  # `second` stays a zombie: killed but not reaped, dead all the same
        _wait_until_zombie(second.pid)  # a SIGKILL lands asynchronously (a loaded machine)
        assert len(_temporaries(tmp_path)) == 4  # the debris of three, one live file
        assert path.read_bytes() == old  # the previous checkpoint is intact
        _same_weights(gn.load_model(path).get_weights(), m.get_weights())

        # the next save of m.graphnet removes its killed saves' files, not a live writer's
        # nor another target's
        m.save(path)
        left = _temporaries(tmp_path)
        assert len(left) == 2
        assert sum(f"-{live.pid}-" in n for n in left) == 1
        assert sum(n.startswith(".tmp-ck-03.graphnet~") for n in left) == 1
        _same_weights(gn.load_model(path).get_weights(), m.get_weights())

        # killed too: a ModelCheckpoint's start removes it, and its template names ck-03
        os.kill(live.pid, signal.SIGKILL)
        live.wait()
        gn.callbacks.ModelCheckpoint(str(path)).on_train_begin()
        assert _temporaries(tmp_path) == [n for n in left if n.startswith(".tmp-ck-03")]
        gn.callbacks.ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}.graphnet")).on_train_begin()
        assert _temporaries(tmp_path) == []
        assert sorted(os.listdir(tmp_path)) == ["m.graphnet"]
    finally:
        for k in kids:
            if k.poll() is None:
                k.kill()
            k.wait()
            k.stdout.close()
            k.stderr.close()


@pytest.mark.skipif(os.name == "nt", reason="pids as on POSIX")
def test_only_temporaries_of_dead_writers_on_this_host_are_removed(tmp_path):
    from graphnet.core import files

    pid, host = os.getpid(), files._host()
    start = files._start_time(pid)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()  # a pid that has just ended
    names = {
        "mine": f".tmp-m.graphnet~{host}-{pid}-{start}-abc_12.part",  # this live process
        # the same pid, started at another time: a reused pid, the writer is gone
        "reused": f".tmp-m.graphnet~{host}-{pid}-{start + 1}-abc_13.part",
        "gone": f".tmp-m.graphnet~{host}-{done.pid}-0-abc_14.part",
        # another host's writer: its pids mean nothing here
        "elsewhere": f".tmp-m.graphnet~{'0' * 8 if host != '0' * 8 else '1' * 8}-{done.pid}-0-"
                     "abc_15.part",
        "other": f".tmp-m2.graphnet~{host}-{done.pid}-0-abc_16.part",  # another target
        "unrelated": ".tmp-notours.graphnet",
    }
    for n in names.values():
        (tmp_path / n).write_bytes(b"partial")
    removed = files.remove_stale_temporaries(tmp_path / "m.graphnet")
    gone = {"gone"} | ({"reused"} if start else set())  # start times where /proc has them
    assert sorted(os.path.basename(p) for p in removed) == sorted(names[k] for k in gone)
    assert _temporaries(tmp_path) == sorted(n for k, n in names.items() if k not in gone)
