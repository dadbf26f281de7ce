"""The capsule body surface: readout offsets depend on the view and match what the depth readout sees."""

import math

import torch

from abspose import skeleton as sk
from abspose.depth import Readout, read_depth
from abspose.fuse import FuseConfig, fuse
from abspose.surface import Capsules, body_capsules, hit_capsules, readout_offsets
from abspose.training.render import render_depth
from abspose.training.synth import rot_y

F = 500.0
K = torch.tensor([[F, 0, 320], [0, F, 240], [0, 0, 1]])
SIZE = (640, 480)
TORSO = [sk.JOINT_INDEX[n] for n in ("pelvis", "left_hip", "right_hip", "neck", "left_shoulder", "head")]

# a person standing upright, arms down, toes towards the camera (camera frame: y down, z forward)
_BODY = {
    "pelvis": (0, 0, 0),
    "left_hip": (0.095, 0, 0),
    "right_hip": (-0.095, 0, 0),
    "left_knee": (0.1, 0.43, 0),
    "right_knee": (-0.1, 0.43, 0),
    "left_ankle": (0.1, 0.85, 0),
    "right_ankle": (-0.1, 0.85, 0),
    "left_foot": (0.1, 0.9, -0.15),
    "right_foot": (-0.1, 0.9, -0.15),
    "spine": (0, -0.27, 0),
    "neck": (0, -0.5, 0),
    "head": (0, -0.68, 0),
    "left_shoulder": (0.18, -0.5, 0),
    "right_shoulder": (-0.18, -0.5, 0),
    "left_elbow": (0.22, -0.2, 0),
    "right_elbow": (-0.22, -0.2, 0),
    "left_wrist": (0.24, 0.05, 0),
    "right_wrist": (-0.24, 0.05, 0),
}


def _person(turn_deg: float, z: float = 3.0) -> torch.Tensor:
    body = torch.tensor([_BODY[n] for n in sk.JOINT_NAMES], dtype=torch.float32)
    turned = body @ rot_y(torch.tensor([math.radians(turn_deg)]))[0].T
    return (turned + torch.tensor([0.0, 0.2, z]))[None]


def _rendered_readout(joints: torch.Tensor):
    z = render_depth(K, SIZE, body_capsules(joints))
    depth = torch.where(torch.isfinite(z), z, torch.full_like(z, float("nan")))
    px = joints[..., :2] / joints[..., 2:] * F + K[:2, 2]
    return px, read_depth(depth, px, torch.ones(joints.shape[:2], dtype=torch.bool), focal=F)


def test_the_torso_columns_stand_evenly_across_its_width():
    """Five columns from the hips to the shoulders: the sides, the spine and two halfway between (an end at
    the midpoint of two joints), so the torso's front is flat, not scalloped."""
    caps = body_capsules(_person(0.0), per_person=True)
    hips_y = float(_person(0.0)[0, sk.JOINT_INDEX["pelvis"], 1])
    upward = (caps.a[0, :, 1] - hips_y).abs() < 1e-6
    upward &= caps.b[0, :, 1] < hips_y - 0.2  # from the hips' height up to the spine or the shoulders
    xs = sorted(round(float(x), 4) for x in caps.a[0, upward, 0])
    assert xs == [-0.095, -0.0475, 0.0, 0.0475, 0.095]
    tops = sorted(round(float(x), 4) for x in caps.b[0, upward, 0])  # the spine's column ends at the spine
    assert tops == [-0.18, -0.09, 0.0, 0.09, 0.18]


def test_the_pelvis_lies_farther_behind_the_surface_seen_from_the_side():
    patch = torch.tensor([0.01])
    front, side = readout_offsets(_person(0), patch), readout_offsets(_person(90), patch)
    pelvis = sk.PELVIS
    assert 0.07 < front[0, pelvis] < 0.12  # the belly: about the torso's half depth
    assert side[0, pelvis] > front[0, pelvis] + 0.05  # the near hip's skin, half a hip width nearer
    assert torch.isfinite(front[0, TORSO]).all()
    far = _person(0, z=-3.0)  # behind the camera: nothing to see
    assert torch.isnan(readout_offsets(far, patch)).all()


def test_offsets_predict_what_the_depth_readout_sees_on_the_rendered_body():
    for turn in (0, 40, 90, 150):
        joints = _person(turn)
        _, r = _rendered_readout(joints)
        seen = joints[..., 2] - r.surface  # how far behind the readout each joint really is
        predicted = readout_offsets(joints, r.patch, quantile=r.quantile)
        err = (seen - predicted)[0, TORSO].abs()
        assert err.max() < 0.015, (turn, err)
        if turn == 90:  # a constant radius is 5+ cm off here
            assert (seen[0, sk.PELVIS] - sk.BODY_RADIUS[sk.PELVIS]) > 0.05


def test_fusion_with_the_surface_model_recovers_the_scale_of_a_person_seen_from_the_side():
    truth = _person(90)
    px, r = _rendered_readout(truth)
    lifted = truth * 1.06  # the monocular lifter: 6 % too far along the rays
    sigma = torch.full((1, sk.NUM_JOINTS), 0.08)
    model = fuse(lifted, sigma, px, K, r, FuseConfig(refine=0.0, surface_model=True))
    radius = fuse(lifted, sigma, px, K, r, FuseConfig(refine=0.0, surface_model=False))
    assert abs(model.scale.item() * 1.06 - 1) < 0.01
    assert radius.scale.item() * 1.06 < 0.985  # constant radii put this person too near
    assert (model.root - truth[:, sk.PELVIS]).norm() < 0.03


def test_offsets_cast_where_the_readout_looked_follow_a_displaced_keypoint():
    # a detector's keypoint is off its joint: the readout sees the surface at the keypoint, and the offset
    # must be taken there too (turned 40°, keypoints 3 cm to the side: the arm, not the torso, or the
    # background at the torso's edge)
    joints = _person(40)
    px = joints[..., :2] / joints[..., 2:] * F + K[:2, 2]
    shifted = px + torch.tensor([0.03 * F / 3.0, 0.0])  # 3 cm at 3 m, in pixels
    z = render_depth(K, SIZE, body_capsules(joints))
    depth = torch.where(torch.isfinite(z), z, torch.full_like(z, float("nan")))
    r = read_depth(depth, shifted, torch.ones(joints.shape[:2], dtype=torch.bool), focal=F)
    seen = joints[..., 2] - r.surface
    at_keypoints = readout_offsets(joints, r.patch, quantile=r.quantile, centres=(shifted - K[:2, 2]) / F)
    at_joints = readout_offsets(joints, r.patch, quantile=r.quantile)
    assert (seen - at_keypoints).abs().nanmean() < 0.003
    assert (seen - at_keypoints).abs().max() < 0.015
    assert (seen - at_joints).abs().max() > 0.05  # the joints' own projections see other surfaces


def test_pelvis_refinement_keeps_the_lifted_shape_and_the_relative_gain_places_better():
    # 400 copies of one person at 6 m whose lifted pose is right but 3 % too far; readouts with 4 cm
    # independent noise. The whole person moves towards the pelvis readout, so the root-aligned shape stays
    # the lifter's (scaled). The person's scale comes from all readouts, so weighing the pelvis readout by
    # the full scale variance (default gain) puts its noise into the placement; the relative gain weighs
    # it against the pelvis's own relative error only.
    n = 400
    truth = _person(30, z=6.0).expand(n, -1, -1)
    px = truth[..., :2] / truth[..., 2:] * F + K[:2, 2]
    offsets = readout_offsets(truth, torch.full((n,), 0.01))
    g = torch.Generator().manual_seed(0)
    noise = 0.04 * torch.randn(n, sk.NUM_JOINTS, generator=g)
    ok = torch.isfinite(offsets)
    r = Readout(
        torch.where(ok, truth[..., 2] - offsets + noise, torch.nan),
        torch.full((n, sk.NUM_JOINTS), 0.04),
        ok,
        torch.full((n,), 0.01),
    )
    sigma = torch.full((n, sk.NUM_JOINTS), 0.08)
    errs = {}
    for relative in (False, True):
        out = fuse(truth * 1.03, sigma, px, K, r, FuseConfig(surface_model=True, refine_relative=relative))
        assert (out.scale * 1.03 - 1).abs().mean() < 0.01  # both find the person's distance
        # every joint is the lifted one times one factor per person: the shape is the lifter's
        factor = out.joints[..., 2] / (truth[..., 2] * 1.03)
        assert torch.allclose(out.joints, truth * 1.03 * factor[..., None], atol=1e-5)
        assert (factor - factor[:, :1]).abs().max() < 1e-5
        errs[relative] = (out.root - truth[:, sk.PELVIS]).norm(dim=-1).mean().item()
    assert errs[True] < 0.8 * errs[False], errs


def test_rays_stop_at_a_capsule_s_near_surface():
    """One capsule along x at 2 m (radius 0.1 m, ends at x = ±0.5): distances along unit rays, by hand."""
    caps = Capsules(torch.tensor([[-0.5, 0.0, 2.0]]), torch.tensor([[0.5, 0.0, 2.0]]), torch.tensor([0.1]))

    def along(*points):  # unit rays from the camera through these points
        d = torch.tensor(points)
        return d / d.norm(dim=-1, keepdim=True)

    t = hit_capsules(along((0.0, 0.0, 2.0), (0.0, 0.05, 2.0), (0.55, 0.0, 2.0), (0.0, 0.3, 2.0)), caps)
    # at the axis: the body's near side, 1.9 m. 5 cm above it: the nearer root of |t·d − (0, 0, 2)|² = r² in y, z
    # (the cylinder), t² (dy² + dz²) − 4 dz t + 4 − r² = 0. Past the end (x = 0.55): the end's sphere. 30 cm
    # above: a miss
    d = along((0.0, 0.05, 2.0))[0]
    qa, qb, qc = d[1] ** 2 + d[2] ** 2, -4.0 * d[2], 4.0 - 0.1**2
    near_body = (-qb - (qb * qb - 4 * qa * qc).sqrt()) / (2 * qa)
    e = along((0.55, 0.0, 2.0))[0]
    centre = torch.tensor([0.5, 0.0, 2.0])
    near_cap = e @ centre - ((e @ centre) ** 2 - (centre @ centre - 0.1**2)).sqrt()
    torch.testing.assert_close(t[:3], torch.stack([torch.tensor(1.9), near_body, near_cap]), atol=1e-5, rtol=0)
    assert torch.isinf(t[3])
    behind = Capsules(-caps.a, -caps.b, caps.r)  # the same capsule behind the camera
    assert torch.isinf(hit_capsules(along((0.0, 0.0, 2.0)), behind)).all()


def test_offsets_look_along_the_joints_own_rays_at_any_distance():
    """By default each readout is cast through its joint's projection, also for people nearer than 1 m."""
    patch = torch.tensor([0.01])
    for z in (0.6, 3.0):
        joints = _person(20, z=z)
        rays = joints[..., :2] / joints[..., 2:]
        torch.testing.assert_close(readout_offsets(joints, patch), readout_offsets(joints, patch, centres=rays))
        assert 0.07 < readout_offsets(joints, patch)[0, sk.PELVIS] < 0.14
