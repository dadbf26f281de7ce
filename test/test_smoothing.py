"""One-Euro filter: less jitter at rest than its input, little lag in motion, NaN joints pass through."""

import numpy as np
import pytest

from abspose.smoothing import OneEuroConfig, OneEuroFilter

HZ = 30.0


def run(cfg: OneEuroConfig, signal: np.ndarray) -> np.ndarray:
    f = OneEuroFilter(cfg)
    return np.array([f(x, k / HZ) for k, x in enumerate(signal)])


def test_a_still_joint_jitters_far_less_than_its_input():
    rng = np.random.default_rng(0)
    noisy = 1.0 + rng.normal(0, 0.02, (150, 2, 3))  # two joints standing still, 2 cm noise
    out = run(OneEuroConfig(), noisy)
    assert np.diff(out[30:], axis=0).std() < 0.3 * np.diff(noisy[30:], axis=0).std()
    assert np.abs(out[30:].mean((0, 1)) - 1.0).max() < 0.01  # no bias


def test_speed_raises_the_cut_off_so_a_moving_joint_lags_little():
    t = np.arange(90) / HZ
    ramp = np.zeros((90, 1, 3))
    ramp[:, 0, 0] = 1.5 * t  # 1.5 m/s
    lag = lambda beta: float(np.abs(run(OneEuroConfig(beta=beta), ramp)[60:, 0, 0] - ramp[60:, 0, 0]).mean())  # noqa: E731
    assert lag(0.8) < 0.5 * lag(0.0) and lag(0.8) < 0.08


def test_nan_joints_pass_through_without_disturbing_the_state():
    f = OneEuroFilter()
    x = np.array([[0.0, 0.0, 2.0], [1.0, 1.0, 3.0], [np.nan, np.nan, np.nan]])
    f(x, 0.0)
    gone = x.copy()
    gone[1] = np.nan
    out = f(gone, 1 / HZ)
    assert np.isnan(out[1:]).all() and np.isfinite(out[0]).all()
    back = x.copy()
    back[1] = [1.2, 1.0, 3.0]  # back after one frame: smoothed on from where it was, not jumping
    back[2] = [5.0, 5.0, 5.0]  # never seen before: taken as it is
    out = f(back, 2 / HZ)
    assert 1.0 < out[1, 0] < 1.2 and out[2] == pytest.approx([5.0, 5.0, 5.0])


def test_time_going_backwards_restarts_the_filter():
    f = OneEuroFilter()
    f(np.zeros((1, 3)), 1.0)
    assert f(np.ones((1, 3)), 0.5) == pytest.approx(np.ones((1, 3)))


def test_each_joint_has_its_own_speed():
    """A still joint is smoothed as much next to a fast one as alone (speed is per joint, not shared)."""
    rng = np.random.default_rng(4)
    still = 1.0 + rng.normal(0, 0.02, (90, 1, 3))
    fast = np.zeros((90, 1, 3))
    fast[:, 0, 0] = 3.0 * np.arange(90) / HZ
    alone = run(OneEuroConfig(), still)
    together = run(OneEuroConfig(), np.concatenate([still, fast], axis=1))
    np.testing.assert_allclose(together[:, :1], alone, atol=1e-12)


def test_a_repeated_timestamp_restarts_instead_of_dividing_by_zero():
    f = OneEuroFilter()
    f(np.zeros((1, 3)), 1.0)
    assert f(np.ones((1, 3)), 1.0) == pytest.approx(np.ones((1, 3)))


def test_a_step_moves_by_the_one_euro_smoothing_factor():
    """Casiez et al.: alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi f_c); with beta = 0 the cut-off is min_cutoff."""
    f = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.0))
    f(np.zeros((1, 3)), 0.0)
    dt = 1 / HZ
    alpha = 1.0 / (1.0 + (1.0 / (2.0 * np.pi * 1.0)) / dt)
    assert f(np.ones((1, 3)), dt) == pytest.approx(np.full((1, 3), alpha), rel=1e-12)
