"""Optimizers: three steps against the formulas written out in NumPy, against torch.optim,
clipping, schedules as learning rates, configs, convergence and the seed's training loop."""

import math

import numpy as np
import pytest

import graphnet as gn
from graphnet import optimizers as O

pytestmark = pytest.mark.lecture1

STEPS = 3


def _params(*arrays, dtype="float64"):
    with gn.Graph("opt"):
        return [gn.Parameter(np.array(a), dtype=dtype, name=f"p{i}")
                for i, a in enumerate(arrays)]


def _grads(rng, shape, steps=STEPS):
    return [rng.normal(size=shape) for _ in range(steps)]


def _run(opt, p0, grads, dtype="float64"):
    (p,) = _params(p0, dtype=dtype)
    for g in grads:
        opt.apply([g.astype(dtype)], [p])
    assert opt.iterations == len(grads)
    return p.value


# -- the update formulas, written out -----------------------------------------------------

def ref_sgd(p, grads, lr, momentum=0.0, nesterov=False):
    m = np.zeros_like(p)
    for g in grads:
        if momentum == 0:
            p = p - lr * g
            continue
        m = momentum * m - lr * g  # velocity
        p = p + (momentum * m - lr * g if nesterov else m)
    return p


def ref_adam(p, grads, lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, wd=0.0):
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        p = p - lr * wd * p  # decoupled weight decay (AdamW)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1 ** t)
        v_hat = (vmax if amsgrad else v) / (1 - b2 ** t)
        # Keras adds epsilon to sqrt(v) before the bias correction: eps_hat = eps / sqrt(1-b2^t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps / math.sqrt(1 - b2 ** t))
    return p


def ref_rmsprop(p, grads, lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    v, mean, mom = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        v = rho * v + (1 - rho) * g * g
        mean = rho * mean + (1 - rho) * g
        denom = v - mean ** 2 + eps if centered else v + eps
        step = lr * g / np.sqrt(denom)
        mom = momentum * mom + step
        p = p - (mom if momentum else step)
    return p


def ref_adagrad(p, grads, lr, init=0.1, eps=1e-7):
    acc = np.full_like(p, init)
    for g in grads:
        acc = acc + g * g
        p = p - lr * g / np.sqrt(acc + eps)
    return p


CASES = {
    "sgd": (lambda: O.SGD(0.1), lambda p, gs: ref_sgd(p, gs, 0.1)),
    "momentum": (lambda: O.SGD(0.1, momentum=0.9), lambda p, gs: ref_sgd(p, gs, 0.1, 0.9)),
    "nesterov": (lambda: O.SGD(0.1, momentum=0.9, nesterov=True),
                 lambda p, gs: ref_sgd(p, gs, 0.1, 0.9, True)),
    "adam": (lambda: O.Adam(0.01), lambda p, gs: ref_adam(p, gs, 0.01)),
    "amsgrad": (lambda: O.Adam(0.01, amsgrad=True),
                lambda p, gs: ref_adam(p, gs, 0.01, amsgrad=True)),
    "adamw": (lambda: O.AdamW(0.01, weight_decay=0.1),
              lambda p, gs: ref_adam(p, gs, 0.01, wd=0.1)),
    "rmsprop": (lambda: O.RMSprop(0.01), lambda p, gs: ref_rmsprop(p, gs, 0.01)),
    "rmsprop_momentum": (lambda: O.RMSProp(0.01, momentum=0.5),
                         lambda p, gs: ref_rmsprop(p, gs, 0.01, momentum=0.5)),
    "rmsprop_centered": (lambda: O.RMSprop(0.01, centered=True),
                         lambda p, gs: ref_rmsprop(p, gs, 0.01, centered=True)),
    "adagrad": (lambda: O.Adagrad(0.1), lambda p, gs: ref_adagrad(p, gs, 0.1)),
}


@pytest.mark.parametrize("case", CASES)
def test_three_steps_match_formula(case, rng):
    make, ref = CASES[case]
    p0, grads = rng.normal(size=(3, 4)), _grads(rng, (3, 4))
    np.testing.assert_allclose(_run(make(), p0, grads), ref(p0, grads), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", ["momentum", "adam", "rmsprop_momentum", "adagrad"])
def test_float32_updates_stay_float32(case, rng):
    make, ref = CASES[case]
    p0, grads = rng.normal(size=(5,)), _grads(rng, (5,))
    out = _run(make(), p0, grads, dtype="float32")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref(p0, grads), rtol=1e-5, atol=1e-6)


def test_weight_decay_applies_to_every_optimizer_and_can_be_excluded(rng):
    p0, grads = rng.normal(size=(4,)), _grads(rng, (4,))
    # SGD with weight decay: p <- p - lr wd p - lr g
    p_ref = p0.copy()
    for g in grads:
        p_ref = p_ref - 0.1 * 0.5 * p_ref - 0.1 * g
    np.testing.assert_allclose(_run(O.SGD(0.1, weight_decay=0.5), p0, grads), p_ref)
    opt = O.AdamW(0.01, weight_decay=0.1)
    a, b = _params(p0, p0)
    opt.exclude_from_weight_decay(var_names=["p1"])
    for g in grads:
        opt.apply([g, g], [a, b])
    np.testing.assert_allclose(a.value, ref_adam(p0, grads, 0.01, wd=0.1), rtol=1e-12)
    np.testing.assert_allclose(b.value, ref_adam(p0, grads, 0.01), rtol=1e-12)


# -- against PyTorch ----------------------------------------------------------------------

TORCH = {  # (graphnet optimizer, torch optimizer); epsilon tiny because Keras and torch
    # place it differently (Keras: inside the root for RMSProp/Adagrad, on sqrt(v) before
    # bias correction for Adam; torch: outside the root, after bias correction)
    "sgd": (lambda: O.SGD(0.1), lambda ps, t: t.optim.SGD(ps, lr=0.1)),
    "nesterov": (lambda: O.SGD(0.1, momentum=0.9, nesterov=True),
                 lambda ps, t: t.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    "adam": (lambda: O.Adam(0.01, epsilon=1e-12),
             lambda ps, t: t.optim.Adam(ps, lr=0.01, eps=1e-12)),
    "adamw": (lambda: O.AdamW(0.01, weight_decay=0.1, epsilon=1e-12),
              lambda ps, t: t.optim.AdamW(ps, lr=0.01, weight_decay=0.1, eps=1e-12)),
    "rmsprop": (lambda: O.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-14),
                lambda ps, t: t.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.5,
                                              eps=1e-14)),
    "adagrad": (lambda: O.Adagrad(0.1, epsilon=1e-14),
                lambda ps, t: t.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.1,
                                              eps=1e-14)),
}


@pytest.mark.parametrize("case", TORCH)
def test_matches_torch_optim(case, rng):
    torch = pytest.importorskip("torch")
    make, make_torch = TORCH[case]
    p0, grads = rng.normal(size=(3, 4)), _grads(rng, (3, 4), steps=4)
    pt = torch.tensor(p0, requires_grad=True)
    topt = make_torch([pt], torch)
    for g in grads:
        pt.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(_run(make(), p0, grads), pt.detach().numpy(), rtol=1e-9,
                               atol=1e-12)


# -- clipping -----------------------------------------------------------------------------

def test_clipvalue_clips_each_element_and_reports_norms():
    g = np.array([3.0, -0.2, -4.0])
    opt = O.SGD(1.0, clipvalue=0.5)
    (p,) = _params(np.zeros(3))
    opt.apply([g], [p])
    np.testing.assert_allclose(p.value, -np.array([0.5, -0.2, -0.5]))
    before, after = opt.last_grad_norms
    assert before == pytest.approx(np.linalg.norm(g))
    assert after == pytest.approx(np.linalg.norm([0.5, 0.2, 0.5]))


def test_clipnorm_clips_each_gradient_on_its_own():
    g1, g2 = np.array([3.0, 4.0]), np.array([0.3, 0.4])  # norms 5 and 0.5
    opt = O.SGD(1.0, clipnorm=1.0)
    a, b = _params(np.zeros(2), np.zeros(2))
    opt.apply([g1, g2], [a, b])
    np.testing.assert_allclose(a.value, -g1 / 5)
    np.testing.assert_allclose(b.value, -g2)
    assert opt.last_grad_norms == pytest.approx((math.sqrt(25.25), math.sqrt(1.25)))


def test_global_clipnorm_scales_all_gradients_together():
    g1, g2 = np.array([3.0, 0.0]), np.array([0.0, 4.0])  # global norm 5
    opt = O.SGD(1.0, global_clipnorm=2.0)
    a, b = _params(np.zeros(2), np.zeros(2))
    opt.apply([g1, g2], [a, b])
    np.testing.assert_allclose(a.value, -g1 * 2 / 5)
    np.testing.assert_allclose(b.value, -g2 * 2 / 5)
    assert opt.last_grad_norms == pytest.approx((5.0, 2.0))
    opt.apply([g1 / 10, g2 / 10], [a, b])  # below the threshold: untouched
    np.testing.assert_allclose(a.value, -g1 * 2 / 5 - g1 / 10)
    assert opt.last_grad_norms == pytest.approx((0.5, 0.5))


def test_clipping_options_are_exclusive_and_norms_tracked_on_request():
    with pytest.raises(ValueError, match="only one"):
        O.Adam(clipnorm=1.0, clipvalue=1.0)
    opt = O.Adam()
    (p,) = _params(np.zeros(2))
    opt.apply([np.array([3.0, 4.0])], [p])
    assert opt.last_grad_norms is None
    opt.track_grad_norms = True
    opt.apply([np.array([3.0, 4.0])], [p])
    assert opt.last_grad_norms == pytest.approx((5.0, 5.0))


@pytest.mark.usefixtures("parallel_kernels")
def test_large_parameters_take_the_parallel_kernels(rng):
    # 1 << 16 elements: the prange twins of adam_update and grad_sq_norms
    p0 = rng.normal(size=(256, 256)).astype(np.float32)
    grads = [rng.normal(size=p0.shape).astype(np.float32) for _ in range(2)]
    opt = O.Adam(0.01, global_clipnorm=10.0)
    out = _run(opt, p0, grads, dtype="float32")
    scaled = [g * (10.0 / np.linalg.norm(g.astype(np.float64))) for g in grads]
    np.testing.assert_allclose(out, ref_adam(p0.astype(np.float64), scaled, 0.01), rtol=1e-4,
                               atol=1e-5)
    assert opt.last_grad_norms[1] == pytest.approx(10.0)


def test_many_parameters_in_one_step_and_reused_buffers(rng):
    # 12 parameters: two fused groups (8 + 2) of float32, one float64, one non-contiguous
    # view; gradients handed over in the same buffers each step (the plan is kept), then in
    # fresh arrays (a new plan each step)
    shapes = [(3,), (2, 4), (5,), (1,), (4, 3), (2,), (6,), (3, 3), (7,), (2, 2), (4,)]
    p0 = [rng.normal(size=s) for s in shapes]
    params = _params(*p0[:10], dtype="float32") + _params(p0[10])
    (view,) = _params(np.zeros((4, 3)), dtype="float32")
    base = rng.normal(size=(4, 6)).astype(np.float32)
    view.data = base[:, ::2]  # a strided view: updated through a contiguous copy
    params.append(view)
    start = [p.value.astype(np.float64).copy() for p in params]
    steps = [[rng.normal(size=p.data.shape) for p in params] for _ in range(4)]
    bufs = [np.empty(p.data.shape, p.data.dtype) for p in params]
    opt = O.Adam(0.05, weight_decay=0.1)
    opt.exclude_from_weight_decay(var_names=["p3"])
    for k, gs in enumerate(steps):
        if k < 2:
            for b, g in zip(bufs, gs):
                b[...] = g
            opt.apply(bufs, params)
        else:
            opt.apply([g.astype(p.data.dtype) for g, p in zip(gs, params)], params)
    for j, (p, s0) in enumerate(zip(params, start)):
        gs = [st[j].astype(p.data.dtype).astype(np.float64) for st in steps]
        wd = 0.0 if p.name == "p3" else 0.1
        ref = ref_adam(s0, gs, 0.05, wd=wd)
        tol = 1e-5 if p.data.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(np.asarray(p.data, np.float64), ref, rtol=tol, atol=tol,
                                   err_msg=p.name)
    assert view.data.base is base  # still the view, written back


# -- learning rates, configs, names -------------------------------------------------------

def test_schedule_is_evaluated_at_each_step(rng):
    sched = gn.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    p0, grads = rng.normal(size=(3,)), _grads(rng, (3,))
    p_ref = p0 - sum(0.1 * 0.5 ** k * g for k, g in enumerate(grads))
    opt = O.SGD(sched)
    np.testing.assert_allclose(_run(opt, p0, grads), p_ref)
    assert opt.learning_rate == pytest.approx(0.1 * 0.5 ** 3)
    with pytest.raises(TypeError):
        opt.learning_rate = 0.3


def test_learning_rate_is_settable(rng):
    opt = O.SGD(0.1)
    (p,) = _params(np.zeros(2))
    opt.apply([np.ones(2)], [p])
    opt.learning_rate = 0.5  # as a LearningRateScheduler callback does
    opt.apply([np.ones(2)], [p])
    np.testing.assert_allclose(p.value, [-0.6, -0.6])
    assert opt.learning_rate == 0.5


@pytest.mark.parametrize("name,cls", [("sgd", O.SGD), ("adam", O.Adam), ("rmsprop", O.RMSprop),
                                      ("adagrad", O.Adagrad), ("adamw", O.AdamW)])
def test_get_by_name_and_config_round_trip(name, cls):
    opt = O.get(name)
    assert type(opt) is cls and O.get(opt) is opt
    other = cls(learning_rate=gn.schedules.CosineDecay(0.1, 100), clipnorm=2.0)
    cfg = other.get_config()
    back = cls.from_config(cfg)
    assert back.get_config() == cfg
    assert isinstance(back._learning_rate, gn.schedules.CosineDecay)
    assert O.deserialize(O.serialize(other)).get_config() == cfg


def test_unknown_optimizer_name_is_refused():
    with pytest.raises(ValueError, match="adam"):
        O.get("adamax_typo")


def test_apply_gradients_keras_form_and_shape_errors():
    opt = O.SGD(0.5)
    a, b = _params(np.ones(2), np.ones(3))
    assert opt.apply_gradients(zip([np.ones(2), None], [a, b])) == 1  # None: skipped
    np.testing.assert_allclose(a.value, [0.5, 0.5])
    np.testing.assert_allclose(b.value, np.ones(3))
    with pytest.raises(gn.GraphError, match="p1"):
        opt.apply([np.ones(2), np.ones(2)], [a, b])


# -- optimization -------------------------------------------------------------------------

CONVERGE = {
    "sgd": lambda: O.SGD(0.1),
    "nesterov": lambda: O.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: O.RMSprop(0.02, momentum=0.5),
    "adagrad": lambda: O.Adagrad(0.5),
    "adam": lambda: O.Adam(0.05),
    "adamw": lambda: O.AdamW(0.05, weight_decay=1e-4),
}


@pytest.mark.parametrize("name", CONVERGE)
def test_minimizes_a_quadratic(name):
    # f(p) = 1/2 sum a (p - c)^2, badly conditioned (a from 1 to 5); gradient a (p - c)
    a, c = np.array([1.0, 2.0, 5.0]), np.array([1.0, -2.0, 0.5])
    (p,) = _params(np.zeros(3))
    opt = CONVERGE[name]()
    for _ in range(500):
        opt.apply([a * (p.value - c)], [p])
    np.testing.assert_allclose(p.value, c, atol=2e-2)


def test_seed_training_loop_with_compiled_program():
    # the seed's GradientTape loop: value, grads = prog(feeds); opt.apply_gradients(...)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    true_w = np.array([1.5, -2.0, 0.5], np.float32)
    Y = X @ true_w + 0.3
    with gn.Graph():
        x = gn.Input((3,), name="x")
        y = gn.Input((), name="y")
        w = gn.Parameter(np.zeros(3), name="w")
        b = gn.Parameter(np.zeros(()), name="b")
        err = gn.sum(x * w, axis=1) + b - y
        loss = gn.mean(err * err)
    params = [w, b]
    prog = gn.compile(loss, wrt=params)
    opt = O.Adam(0.1)
    first = None
    for _ in range(300):
        value, grads = prog({x: X, y: Y})
        first = value if first is None else first
        opt.apply_gradients(zip(grads, params))
    assert value < 1e-4 < first
    np.testing.assert_allclose(w.value, true_w, atol=1e-2)
    np.testing.assert_allclose(b.value, 0.3, atol=1e-2)


# -- the row form: an embedding table's gradient as the rows a batch names ----------------

def _row_grads(rng, vocab=300, dim=4, batches=3):
    """A table (vocab, dim), and per step the IndexedRows gradient of a program that looks
    up 2 x 5 ids (fewer than vocab rows: the form Adam reads as rows), repeats included."""
    with gn.Graph("rows"):
        ids = gn.Input((5,), dtype="int64", name="ids")
        table = gn.Parameter(rng.normal(size=(vocab, dim)).astype(np.float32), name="table")
        w = gn.constant(rng.normal(size=(5, dim)).astype(np.float32))
        loss = gn.sum(gn.embedding(ids, table) * w)
    prog = gn.compile(loss, wrt=[table])
    prog.row_grads = True
    feeds = [rng.integers(0, vocab, size=(2, 5)) for _ in range(batches)]
    for f in feeds:
        f[1, 0] = f[0, 0]  # a row named twice
    return table, prog, feeds


@pytest.mark.parametrize("make", [lambda: O.Adam(0.01), lambda: O.Adam(0.01, amsgrad=True),
                                  lambda: O.AdamW(0.01, weight_decay=0.1),
                                  lambda: O.Adam(0.01, clipvalue=0.3),
                                  lambda: O.Adam(0.01, clipnorm=0.5), lambda: O.SGD(0.1, 0.9)],
                         ids=["adam", "amsgrad", "adamw", "clipvalue", "clipnorm", "sgd"])
def test_row_gradients_update_as_the_dense_gradient_bit_for_bit(make, rng):
    table, prog, feeds = _row_grads(rng)
    start = table.value.copy()
    with gn.Graph("dense"):
        twin = gn.Parameter(start.copy(), name="table")
    rows_opt, dense_opt = make(), make()
    for f in feeds:
        _, (g,) = prog({"ids": f}, to_host=False)
        assert isinstance(g, gn.IndexedRows) and g.shape == start.shape
        want = np.zeros_like(start)
        np.add.at(want, f.reshape(-1), g.values.reshape(-1, start.shape[1]))
        dense_g = want.copy()  # the dense gradient, written out (its own buffer)
        rows_opt.apply([g], [table])
        dense_opt.apply([dense_g], [twin])
        np.testing.assert_array_equal(table.value, twin.value)
    assert not np.array_equal(table.value, start)
    # every row moved: the untouched ones by their decaying moments after the first step
    assert (np.abs(table.value - start).sum(axis=1) > 0).mean() > 0.05


def test_row_gradients_bit_for_bit_through_the_parallel_twins(rng, monkeypatch):
    # the row sums and the update split by columns and rows among threads: the same bits
    import graphnet.kernels.jit as jit

    monkeypatch.setattr(jit, "PARALLEL_MIN", 1)
    test_row_gradients_update_as_the_dense_gradient_bit_for_bit(lambda: O.Adam(0.01), rng)


def test_adam_row_kernel_twins_match_numpy(rng):
    import importlib

    k = importlib.import_module("graphnet.kernels.cpu.optim")
    rows, dim = 40, 8
    ids = np.array([3, 7, 3, 0, 39])
    vals = rng.normal(size=(5, dim)).astype(np.float32)
    vals[4, :3] = -0.0  # a row's first value is 0 + v, as in the dense sum: +0, not -0
    g = np.zeros((rows, dim), np.float32)
    for i, r in enumerate(ids):  # the dense gradient, rows summed in order
        g[r] += vals[i]
    p0 = rng.normal(size=(rows, dim)).astype(np.float32)
    m0, v0 = rng.normal(size=(rows, dim)).astype(np.float32), np.abs(p0) + 0.1
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-7, 0.001
    # one Adam step (t = 1) from these moments, in NumPy
    m = b1 * m0 + (1 - b1) * g
    v = b2 * v0 + (1 - b2) * g * g
    alpha = lr * math.sqrt(1 - b2) / (1 - b1)
    want = p0 - wd * p0 - alpha * m / (np.sqrt(v) + eps)
    slot = np.full(rows, -1, np.int64)
    comp, order, first = np.empty((5, dim), np.float32), np.empty(5, np.int64), np.empty(5, bool)
    for twin, chunks in ((k._sum_rows.serial, 1), (k._sum_rows.parallel, 3)):
        slot[:] = -1
        comp[:] = np.nan  # never cleared: every row's first value is written
        assert twin(ids, vals, np.arange(5), slot, comp, order, first, chunks) == 4
        np.testing.assert_array_equal(comp[slot[ids]].view(np.int32), g[ids].view(np.int32))
        assert first.tolist() == [True, True, False, True, True]
        assert order[:4].tolist() == [0, 3, 7, 39]  # ascending: the update reads comp so
        assert slot[order[:4]].tolist() == [0, 1, 2, 3]
    settings = tuple(np.float32(s) for s in (1, wd, alpha, 1 - b1, 1 - b2, eps, 0, np.inf))
    for twin in (k._adam_rows.serial, k._adam_rows.parallel):
        p, mm, vv = p0.copy(), m0.copy(), v0.copy()
        twin(p, mm, vv, mm, slot, comp, np.zeros(dim, np.float32), *settings)
        np.testing.assert_allclose(p, want, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(mm, m, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(vv, v, rtol=1e-6, atol=1e-7)
    p = p0.copy()
    k.adam_rows_update(p, ids, vals, m0.copy(), v0.copy(), None, alpha, b1, b2, eps, 1.0,
                       np.inf, wd)
    np.testing.assert_allclose(p, want, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="id 40 is out of range for a table of rows 40"):
        k.adam_rows_update(p, np.array([40]), vals[:1], m0, v0, None, alpha, b1, b2, eps)
    # src: id i adds values row src[i] (a mean's gradient, one row per bag), the same bits
    # as those rows written out per id
    bags, src = vals[[0, 4]], np.array([0, 0, 1, 1, 1])
    for twin, chunks in ((k._sum_rows.serial, 1), (k._sum_rows.parallel, 3)):
        slot[:] = -1
        comp[:] = np.nan
        assert twin(ids, bags, src, slot, comp, order, first, chunks) == 4
        want_rows = np.zeros((rows, dim), np.float32)
        for i, r in enumerate(ids):
            want_rows[r] += bags[src[i]]
        np.testing.assert_array_equal(comp[slot[ids]].view(np.int32),
                                      want_rows[ids].view(np.int32))
    p, p2 = p0.copy(), p0.copy()
    k.adam_rows_update(p, ids, bags, m0.copy(), v0.copy(), None, alpha, b1, b2, eps, src=src)
    k.adam_rows_update(p2, ids, bags[src], m0.copy(), v0.copy(), None, alpha, b1, b2, eps)
    np.testing.assert_array_equal(p.view(np.int32), p2.view(np.int32))
    with pytest.raises(ValueError, match="src names rows outside the 2 rows of values"):
        k.adam_rows_update(p, ids, bags, m0, v0, None, alpha, b1, b2, eps, src=src + 1)
    with pytest.raises(ValueError, match="src names 4 rows for 5 ids"):
        k.adam_rows_update(p, ids, bags, m0, v0, None, alpha, b1, b2, eps, src=src[:4])
