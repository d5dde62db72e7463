"""Learning-rate schedules against Keras' formulas, written out here."""

import math

import pytest

from graphnet import schedules as S

pytestmark = pytest.mark.lecture1


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay(staircase):
    s = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=staircase)
    for step in [0, 1, 9, 10, 15, 37]:
        p = step // 10 if staircase else step / 10
        assert s(step) == pytest.approx(0.1 * 0.5 ** p)


def test_piecewise_constant_decay_and_step_alias():
    s = S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [s(k) for k in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    assert S.StepDecay is S.PiecewiseConstantDecay
    with pytest.raises(ValueError, match="one more"):
        S.PiecewiseConstantDecay([10], [1.0])
    with pytest.raises(ValueError, match="increase"):
        S.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1])


@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_cosine_decay(alpha):
    s = S.CosineDecay(0.2, decay_steps=100, alpha=alpha)
    for step in [0, 1, 50, 99, 100, 250]:
        k = min(step, 100)
        cosine = 0.5 * (1 + math.cos(math.pi * k / 100))
        assert s(step) == pytest.approx(0.2 * ((1 - alpha) * cosine + alpha))
    assert s(0) == pytest.approx(0.2) and s(100) == pytest.approx(0.2 * alpha)


def test_cosine_decay_with_warmup():
    s = S.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=5)
    assert [s(k) for k in (0, 1, 4)] == pytest.approx([0.0, 0.2, 0.8])
    assert s(5) == pytest.approx(1.0)
    assert s(10) == pytest.approx(0.5)  # halfway through the cosine
    assert s(15) == pytest.approx(0.0) and s(99) == pytest.approx(0.0)


@pytest.mark.parametrize("sched", [S.ExponentialDecay(0.1, 5, 0.9, staircase=True),
                                   S.PiecewiseConstantDecay([3], [0.1, 0.01]),
                                   S.CosineDecay(0.1, 7, alpha=0.2)])
def test_config_round_trip(sched):
    back = S.deserialize(S.serialize(sched))
    assert type(back) is type(sched) and back.get_config() == sched.get_config()
    assert [back(k) for k in range(10)] == [sched(k) for k in range(10)]
    assert type(sched).__name__ in repr(sched)
