"""Per-track metric scale: measured scales accumulate, carry over frames only the lifter sees, refuse a
ground contact a jump fakes; and on the real TU/e recording a depth dropout does not move the person."""

import copy
import math

import numpy as np
import pytest

from abspose.body_scale import LIFTER_ONLY, MEASURED_DEPTH, MEASURED_GROUND, BodyScale
from abspose.fuse import SOURCE_FUSED, SOURCE_LIFTED, SOURCE_TRACK
from abspose.track import Tracker


def test_measurements_accumulate_and_carry_over_to_lifter_only_frames():
    body = BodyScale()
    assert body.observe(0.0, 1.0, 0.08, LIFTER_ONLY) == (1.0, 0.08)  # nothing known yet: the lifter's own
    for k in range(10):
        assert body.observe(0.1 * k, 1.06, 0.02, MEASURED_DEPTH) == (1.0, 0.02)  # measured frames stay
    factor, sigma = body.observe(1.1, 1.0, 0.08, LIFTER_ONLY)
    assert factor == pytest.approx(1.06, rel=1e-3)
    assert 0.03 <= sigma < 0.08  # the frame-to-frame part stays; far better than the lifter's 8 %
    # a lifter-only frame with a smaller σ than the track's keeps its own
    assert body.observe(1.2, 1.0, 0.02, LIFTER_ONLY)[0] == 1.0


def test_the_scale_is_a_kalman_filter_whose_variance_grows_with_time():
    """Two depth measurements 4 s apart, then a lifter-only frame 9 s later: the estimate and its σ are the
    scalar filter's, worked by hand (log scale; measurement variance σ² + frame σ², drift² per second)."""
    cfg = BodyScale().cfg
    body = BodyScale(cfg)
    body.observe(10.0, 1.05, 0.04, MEASURED_DEPTH)
    body.observe(14.0, 0.98, 0.02, MEASURED_DEPTH)
    factor, sigma = body.observe(23.0, 1.10, 0.20, LIFTER_ONLY)
    r1, r2 = 0.04**2 + cfg.frame_sigma**2, 0.02**2 + cfg.frame_sigma**2
    prior = r1 + 4.0 * cfg.drift**2
    gain = prior / (prior + r2)
    log = math.log(1.05) + gain * (math.log(0.98) - math.log(1.05))
    var = prior * (1 - gain) + 9.0 * cfg.drift**2
    assert factor * 1.10 == pytest.approx(math.exp(log), rel=1e-9)
    assert sigma == pytest.approx(math.sqrt(var + cfg.frame_sigma**2), rel=1e-9)
    assert body.var == pytest.approx(var, rel=1e-9)
    # a stamp older than the last one adds no drift
    before = body.var
    body.observe(20.0, 1.0, 0.2, LIFTER_ONLY)
    assert body.var == before
    # measurements that are no scale change nothing and are passed through
    state = (body.log, body.var)
    for scale, sig in ((math.nan, 0.05), (-1.0, 0.05), (0.0, 0.05), (1.0, 0.0), (1.0, math.inf), (1.0, -0.1)):
        assert body.observe(20.0, scale, sig, MEASURED_DEPTH) == (1.0, sig)
        assert (body.log, body.var) == state


def test_a_ground_contact_far_from_the_tracks_scale_is_refused():
    body = BodyScale()
    for k in range(10):
        body.observe(0.1 * k, 0.95, 0.03, MEASURED_GROUND)
    # mid-jump: the feet 0.3 m up read as a floor contact 25 % farther
    factor, _ = body.observe(1.0, 1.19, 0.03, MEASURED_GROUND)
    assert factor * 1.19 == pytest.approx(math.exp(body.log), rel=1e-6) and factor < 0.85
    # a contact that agrees is used as measured
    assert body.observe(1.1, 0.96, 0.03, MEASURED_GROUND)[0] == 1.0


def test_the_tracker_applies_the_scale_before_smoothing_and_velocity():
    tr = Tracker()
    joints = np.zeros((1, 18, 3)) + [0.0, 0.0, 4.0]
    box = np.array([[0.0, 0.0, 50.0, 100.0]])
    for k in range(5):
        tr.update(0.1 * k, joints[:, 0] * 1.1, box, joints * 1.1, np.array([[1.1, 0.02, MEASURED_DEPTH]]))
    (track,) = tr.update(0.5, joints[:, 0], box, joints, np.array([[1.0, 0.08, LIFTER_ONLY]]))
    assert track.factor == pytest.approx(1.1, rel=1e-3)
    assert track.root[2] == pytest.approx(4.4, abs=0.01)
    assert np.linalg.norm(np.nan_to_num(track.velocity)) < 0.1  # no jump, so no velocity spike


def _restamp(msg, t: float):
    m = copy.copy(msg)
    m.header = copy.copy(msg.header)
    m.header.stamp = copy.copy(msg.header.stamp)
    m.header.stamp.sec, m.header.stamp.nanosec = int(t), round((t % 1) * 1e9)
    return m


def _pelvis_depths(make, bag_frame, body_scale: bool) -> list[tuple[float, int]]:
    image, info, depth = bag_frame
    proc = make(**{"tracking.body_scale": body_scale, "smoothing.enabled": False, "detector.max_people": 1})
    out = []
    for k in range(10):
        t = 100.0 + 0.1 * k
        r = proc.process(_restamp(image, t), _restamp(info, t), None if k == 7 else _restamp(depth, t))
        (person,) = [p for p in r.people if p.state == 1]
        out.append((float(person.root[2]), int(person.source[0])))
    return out


def test_a_depth_dropout_does_not_move_the_person(make, bag_frame):
    """The TU/e recording's near person at 2.0 m, depth every frame but the 8th. Measured: without the track's
    scale the pelvis jumps 3.7 cm towards the camera (the monocular lifter's error) and back, with it 0.5 cm."""
    off, on = _pelvis_depths(make, bag_frame, False), _pelvis_depths(make, bag_frame, True)
    assert off[6][1] == on[6][1] == SOURCE_FUSED
    assert off[7][1] == SOURCE_LIFTED and on[7][1] == SOURCE_TRACK
    jump_off, jump_on = abs(off[7][0] - off[6][0]), abs(on[7][0] - on[6][0])
    assert jump_on < 0.015 and jump_on < 0.4 * jump_off, (jump_on, jump_off)
    assert on[8] == off[8]  # depth back: measured again, the same as without


def test_joints_a_track_scale_moved_say_so_and_the_rest_keep_their_source():
    """The frame's detections as the processor publishes them: the person whose track scale moved it (a
    monocular frame, or a ground contact the track refused) has its lifted and ground-placed joints marked
    SOURCE_TRACK with the track's σ; its invalid joints stay invalid, and a person not moved keeps everything."""
    import torch

    from abspose.fuse import SOURCE_GROUND, SOURCE_INVALID
    from abspose.pipeline import People
    from abspose.ros.processor import FrameProcessor
    from abspose.track import Track

    n, j = 2, 4
    source = torch.tensor([[SOURCE_LIFTED, SOURCE_GROUND, SOURCE_INVALID, SOURCE_LIFTED]] * n, dtype=torch.uint8)
    joints = torch.tensor([[[0.1 * k, 0.0, 4.0] for k in range(j)]] * n)
    unc = torch.full((n, j), 0.2)
    people = People(
        torch.zeros(n, j, 2), torch.ones(n, j), torch.ones(n), joints, unc, source, joints[:, 0],
        torch.full((n, j), float("nan")), torch.ones(n), torch.full((n,), 0.05),
    )  # fmt: skip

    def track(d: int, factor: float, sigma: float) -> Track:
        z = np.zeros(3)
        return Track(f"p{d}", d, 1, z, z, np.zeros((j, 3)), np.zeros(4), 0.0, detection=d, factor=factor,
                     scale_sigma=sigma)  # fmt: skip

    uncertainty, src = FrameProcessor._track_scaled(people, [track(0, 1.04, 0.02), track(1, 1.0, float("nan"))])
    assert src[0].tolist() == [SOURCE_TRACK, SOURCE_TRACK, SOURCE_INVALID, SOURCE_TRACK]
    assert src[1].tolist() == source[1].tolist() and np.allclose(uncertainty[1], 0.2)
    assert not np.allclose(uncertainty[0], 0.2)  # the moved person's joints take the track's scale σ
