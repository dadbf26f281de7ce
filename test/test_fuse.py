"""Fusion of lifted joints with depth readouts: person scale, outlier joints, gating, sources, uncertainty."""

import math
from dataclasses import replace

import pytest
import torch
from scipy.spatial.transform import Rotation

from abspose import skeleton as sk
from abspose.depth import Readout
from abspose.fuse import (
    SOURCE_DEPTH,
    SOURCE_FUSED,
    SOURCE_INVALID,
    SOURCE_LIFTED,
    FuseConfig,
    Fused,
    fuse,
    orient,
    relative_error,
    rescale,
)
from abspose.lifter import lift

K = torch.tensor([[540.0, 0, 320], [0, 540.0, 240], [0, 0, 1]])
RADIUS = torch.tensor(sk.BODY_RADIUS)


def _person(z=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    joints = torch.randn(1, sk.NUM_JOINTS, 3, generator=g) * torch.tensor([0.3, 0.5, 0.1]) + torch.tensor([0.2, 0.1, z])
    kp = joints[..., :2] / joints[..., 2:] * 540 + torch.tensor([320.0, 240.0])
    surface = joints[..., 2] - RADIUS
    readout = Readout(surface.clone(), torch.full_like(surface, 0.02), torch.ones_like(surface, dtype=torch.bool))
    return joints, kp, readout


def test_consistent_depth_corrects_a_lifted_pose_that_is_too_far():
    truth, kp, readout = _person()
    lifted = truth * 1.08  # monocular scale error: 8 % too far along the rays
    sigma = torch.full((1, sk.NUM_JOINTS), 0.15)
    readout.valid[0, sk.JOINT_INDEX["spine"]] = False  # no readout (output-only joint)
    out = fuse(lifted, sigma, kp, K, readout)
    err_lifted = (lifted - truth).norm(dim=-1)
    err_fused = (out.joints - truth).norm(dim=-1)
    fused = out.source[0] == SOURCE_FUSED
    assert fused.sum() == sk.NUM_JOINTS - 1
    assert (err_fused[0][fused] < 0.03).all() and err_lifted.mean() > 0.2
    spine = sk.JOINT_INDEX["spine"]
    assert out.source[0, spine] == SOURCE_LIFTED and err_fused[0, spine] < 0.5 * err_lifted[0, spine]  # carried along
    mono = fuse(lifted, sigma, kp, K, None)
    assert (out.uncertainty < 0.1).all() and (mono.uncertainty > 0.15).all()  # depth fixed the placement
    assert abs(out.scale.item() - 1 / 1.08) < 1e-3


def test_readouts_far_from_the_pose_fall_back_to_the_lifter():
    truth, kp, readout = _person()
    sigma = torch.full((1, sk.NUM_JOINTS), 0.05)
    wrong = [sk.JOINT_INDEX["left_wrist"], sk.JOINT_INDEX["right_knee"]]
    readout.surface[0, wrong] -= 1.2  # an occluder's depth
    out = fuse(truth, sigma, kp, K, readout)
    assert (out.source[0, wrong] == SOURCE_LIFTED).all()
    assert ((out.joints - truth).norm(dim=-1) < 0.02).all()


def test_monocular_depth_only_and_invalid_joints():
    truth, kp, readout = _person()
    sigma = torch.full((1, sk.NUM_JOINTS), 0.1)
    mono = fuse(truth, sigma, kp, K, None)
    assert (mono.source == SOURCE_LIFTED).all() and torch.equal(mono.joints, truth)
    lifted = truth.clone()
    lifted[0, 3] = float("nan")
    readout.valid[0, 4] = False
    readout.surface[0, 4] = float("nan")
    lifted[0, 4] = float("nan")
    out = fuse(lifted, sigma, kp, K, readout)
    assert out.source[0, 3] == SOURCE_DEPTH and torch.allclose(out.joints[0, 3], truth[0, 3], atol=1e-4)
    assert out.source[0, 4] == SOURCE_INVALID and torch.isnan(out.uncertainty[0, 4])
    empty = fuse(truth[:0], sigma[:0], kp[:0], K, None)
    assert empty.joints.shape == (0, sk.NUM_JOINTS, 3)


def _facing(joints: torch.Tensor) -> float:
    """Yaw (deg) of a body's front about the camera's y axis: 0 = facing the camera, + = turned to its left."""
    j = sk.JOINT_INDEX
    lateral = joints[j["left_hip"]] - joints[j["right_hip"]] + joints[j["left_shoulder"]] - joints[j["right_shoulder"]]
    return math.degrees(math.atan2(float(lateral[2]), float(lateral[0])))


def _frontal_torso(z: float = 2.5) -> torch.Tensor:
    """[1, J, 3]: an upright torso facing the camera, z m away (the other joints at the pelvis)."""
    j = sk.JOINT_INDEX
    body = torch.zeros(1, sk.NUM_JOINTS, 3) + torch.tensor([0.0, 0.0, z])
    for name, (x, y) in {
        "left_hip": (0.1, 0.0),
        "right_hip": (-0.1, 0.0),
        "left_shoulder": (0.18, -0.5),
        "right_shoulder": (-0.18, -0.5),
        "neck": (0.0, -0.55),
        "head": (0.0, -0.75),
        "left_knee": (0.1, 0.45),
        "left_wrist": (0.25, -0.1),
    }.items():
        body[0, j[name]] += torch.tensor([x, y, 0.0])
    return body


def test_orient_turns_the_lifted_body_towards_the_measured_torso_plane():
    truth, kp, readout = _person(z=2.5)
    body = _frontal_torso()
    assert abs(_facing(body[0])) < 1e-3
    cfg = FuseConfig(orient=True)
    yaw = math.radians(30.0)
    normal = torch.tensor([[math.sin(yaw), 0.0, -math.cos(yaw)]])
    for sigma, expect in ((1e-4, 30.0), (cfg.orient_prior, 15.0)):  # a sure plane; one as unsure as the lifter
        turned = orient(body, normal, torch.tensor([sigma]), cfg)
        assert abs(_facing(turned[0]) - expect) < 0.5, (sigma, _facing(turned[0]))
        torch.testing.assert_close(turned[:, sk.PELVIS], body[:, sk.PELVIS])  # turned about the spine
        torch.testing.assert_close((turned - turned[:, :1]).norm(dim=-1), (body - body[:, :1]).norm(dim=-1))
    # beyond the gate (80 deg against 20 deg of the lifter's prior) or without a plane: untouched
    far = torch.tensor([[math.sin(math.radians(80.0)), 0.0, -math.cos(math.radians(80.0))]])
    assert torch.equal(orient(body, far, torch.tensor([1e-4]), cfg), body)
    assert torch.equal(orient(body, torch.full((1, 3), float("nan")), torch.tensor([float("nan")]), cfg), body)
    # fuse casts the surface model's readouts at the turned body, only when asked and a plane was measured
    readout.torso_normal, readout.torso_sigma = normal, torch.tensor([1e-4])
    readout.patch = torch.full((1,), 0.01)
    sigma_j = torch.full((1, sk.NUM_JOINTS), 0.1)
    surface = FuseConfig(surface_model=True, orient=False)
    plain = fuse(truth, sigma_j, kp, K, readout, surface)
    oriented = fuse(truth, sigma_j, kp, K, readout, replace(surface, orient=True))
    unmeasured = fuse(truth, sigma_j, kp, K, replace(readout, torso_normal=None), replace(surface, orient=True))
    assert torch.equal(plain.joints, unmeasured.joints)
    assert not torch.allclose(plain.joints, oriented.joints)


def test_orient_is_the_same_seen_from_any_camera_pose_and_for_each_person_alone():
    """Turning the camera about its centre (here rolled 25 deg and tilted 10 deg) turns the result with it,
    and each person of a batch is turned as when alone: a leaning spine, a back to the camera, a sure plane,
    an unsure one, and a torso seen edge-on (left as it is)."""
    cfg = FuseConfig(orient=True)
    camera = Rotation.from_euler("zx", [25, 10], degrees=True)
    turn = torch.from_numpy(camera.as_matrix()).float()
    back = _frontal_torso(3.0)  # their back to the camera: mirrored in x about the spine
    back[..., 0] = -back[..., 0]
    edge_on = _frontal_torso(2.5)  # turned 75 deg about the spine: no plane to measure
    spin = torch.from_numpy(Rotation.from_euler("y", 75, degrees=True).as_matrix()).float()
    edge_on = (edge_on - edge_on[:, :1]) @ spin.T + edge_on[:, :1]
    bodies = torch.cat([_frontal_torso(), back, _frontal_torso(2.0) @ turn.T, edge_on])
    yaw = torch.tensor([30.0, -20.0, 25.0, -60.0]).deg2rad()  # the edge-on one: 15 deg from its lifted front
    normals = torch.stack([yaw.sin(), torch.zeros(4), -yaw.cos()], -1)
    normals[2] = normals[2] @ turn.T
    sigma = torch.tensor([1e-4, 1e-4, cfg.orient_prior, 1e-4])
    turned = orient(bodies, normals, sigma, cfg)
    assert not torch.allclose(turned[:3], bodies[:3], atol=1e-3) and torch.equal(turned[3], bodies[3])
    moved = orient(bodies @ turn.T, normals @ turn.T, sigma, cfg)
    torch.testing.assert_close(moved, turned @ turn.T, atol=1e-5, rtol=0)
    for i in range(4):
        alone = slice(i, i + 1)
        torch.testing.assert_close(orient(bodies[alone], normals[alone], sigma[alone], cfg), turned[alone])


def test_without_a_pelvis_readout_the_hips_anchor_the_person():
    # limbs' readouts 5 cm too far (patches mixing surfaces) pull the consensus scale; the pelvis's own
    # readout is a hole, so the hips' readouts (exact here) must place the person, through the lifted
    # hip-to-pelvis depths
    truth, kp, readout = _person(z=3.0)
    j = sk.JOINT_INDEX
    hips, torso = [j["left_hip"], j["right_hip"]], [sk.PELVIS, j["left_hip"], j["right_hip"]]
    limbs = [i for i in range(sk.NUM_JOINTS) if i not in torso]
    readout.surface[0, limbs] += 0.05
    readout.valid[0, sk.PELVIS], readout.surface[0, sk.PELVIS] = False, float("nan")
    sigma = torch.full((1, sk.NUM_JOINTS), 0.05)
    hips_too = fuse(truth, sigma, kp, K, readout)
    pelvis_only = fuse(truth, sigma, kp, K, readout, FuseConfig(anchors=("pelvis",)))
    err = {
        name: float((out.root - truth[:, sk.PELVIS]).norm())
        for name, out in (("hips", hips_too), ("pelvis only", pelvis_only))
    }
    assert err["pelvis only"] > 0.02 and err["hips"] < 0.5 * err["pelvis only"], err
    # with the hips' readouts gone too, nothing anchors: the consensus scale alone, as with the pelvis only
    readout.valid[0, hips] = False
    none = fuse(truth, sigma, kp, K, readout)
    torch.testing.assert_close(none.root, fuse(truth, sigma, kp, K, readout, FuseConfig(anchors=("pelvis",))).root)


def test_the_gate_sends_a_person_back_to_the_lifter_whether_depth_says_nearer_or_farther():
    truth, kp, readout = _person()
    sigma = torch.full((1, sk.NUM_JOINTS), 0.05)  # a confident lifter
    for factor in (0.6, 1.4):  # every readout says the person is 40 % nearer / farther (a wall, a window)
        wrong = replace(readout, surface=readout.surface * factor)
        out = fuse(truth, sigma, kp, K, wrong)
        assert (out.source == SOURCE_LIFTED).all(), factor
        assert out.scale.item() == 1.0 and torch.equal(out.joints, truth)


def test_the_second_lifter_pass_sees_only_the_readouts_fusion_accepted():
    """An occluder's readouts, rejected by the first fusion, must not reach the lifter as depth features: the
    second pass gets the readouts of the joints the first fusion used and NaN elsewhere. (Comparing with the
    same readouts made invalid is not the same test: dropping them moves the first fusion's median, and with
    it which borderline joints count — the 2026-12-05 checkpoint flipped one on this made-up body.) The
    readouts are those of the body where the lifter itself puts it, 5 % farther, so that how a checkpoint
    places a made-up body does not decide whether depth is fused at all."""
    from abspose.fuse import lift_with_depth
    from abspose.lifter import Lifter

    _, kp, readout = _person(z=3.0)
    lifter = Lifter.load()
    confidence = torch.ones(1, sk.NUM_JOINTS)
    mono = lift(lifter, kp, confidence, K)
    surface = mono.joints[..., 2] * 1.05 - RADIUS
    wrong = [sk.JOINT_INDEX["left_wrist"], sk.JOINT_INDEX["right_knee"]]
    occluded = replace(readout, surface=surface.clone())
    occluded.surface[0, wrong] -= 1.2  # something between the camera and the wrist and knee
    first = fuse(mono.joints, mono.uncertainty, kp, K, occluded)
    used = first.source == SOURCE_FUSED
    assert not used[0, wrong].all() and used.sum() >= 10  # the occluder is caught, the body kept
    accepted = torch.where(used, occluded.surface, torch.full_like(occluded.surface, float("nan")))
    second = lift(lifter, kp, confidence, K, accepted)
    expected = fuse(second.joints, second.uncertainty, kp, K, occluded)
    got = lift_with_depth(lifter, kp, confidence, K, occluded)
    torch.testing.assert_close(got.joints, expected.joints)
    # with every readout as a feature (the rejected ones too) the result differs: the gate matters
    ungated = lift(lifter, kp, confidence, K, torch.where(occluded.valid, occluded.surface, torch.nan))
    assert not torch.allclose(fuse(ungated.joints, ungated.uncertainty, kp, K, occluded).joints, got.joints)


@pytest.mark.parametrize(("z", "refine"), [(4.0, 1.0), (0.8, 0.5)])
def test_scale_anchors_and_uncertainty_worked_by_hand(z, refine):
    """A flat person z m away (also nearer than 1 m), two readouts (behind their surfaces, the pelvis at 1.06 z,
    the left hip at 1.04 z; sensor σ 3 and 4 cm), the rest unread; constant body radii, no orientation, the
    anchors' pull in full or by half (``refine``): every step of the fusion by hand."""
    p, lh = sk.PELVIS, sk.JOINT_INDEX["left_hip"]
    lifted = torch.zeros(1, sk.NUM_JOINTS, 3, dtype=torch.float64)
    lifted[..., 0] = torch.linspace(-0.3, 0.3, sk.NUM_JOINTS, dtype=torch.float64)
    lifted[..., 2] = z
    kp = lifted[..., :2] / z * 540 + torch.tensor([320.0, 240.0], dtype=torch.float64)
    depth = torch.full((1, sk.NUM_JOINTS), float("nan"), dtype=torch.float64)
    radius = torch.tensor(sk.BODY_RADIUS, dtype=torch.float64)  # what fuse adds back, to the last bit
    depth[0, [p, lh]] = torch.tensor([1.06 * z, 1.04 * z], dtype=torch.float64) - radius[[p, lh]]
    sensor = torch.full_like(depth, 0.05)
    sensor[0, [p, lh]] = torch.tensor([0.03, 0.04], dtype=torch.float64)
    readout = Readout(depth, sensor, torch.isfinite(depth))
    cfg = FuseConfig(surface_model=False, orient=False, refine=refine)
    out = fuse(lifted, torch.full((1, sk.NUM_JOINTS), 0.08, dtype=torch.float64), kp, K, readout, cfg)

    eps = 1.25 * 0.08  # the lifter's σ per axis; every joint alike, so the relative part is the 0.3 floor
    rel = 0.3 * eps
    s_j = [1.06, 1.04]
    sig_j = [math.hypot(0.03, rel) / z, math.hypot(0.04, rel) / z]
    w = [1 / v**2 for v in sig_j]
    s = (w[0] * s_j[0] + w[1] * s_j[1]) / sum(w)  # inverse-variance mean of the two joints' scales
    sig_s = math.sqrt(1 / sum(w) + 0.02**2)  # with the floor for what does not average out
    # the anchors (pelvis directly, the hip with its relative error) pull the person towards their readouts
    var_g = rel**2 + (z * s * sig_s) ** 2  # the pelvis's variance after the consensus scale
    w_a = [1 / 0.03**2, 1 / (0.04**2 + rel**2)]
    var_d = 1 / sum(w_a)
    gain = var_g / (var_g + var_d) * refine
    own = (w_a[0] * s_j[0] + w_a[1] * s_j[1]) * var_d / s
    factor = s * (1 + gain * (own - 1))
    assert out.scale.item() == pytest.approx(factor, rel=1e-9)
    torch.testing.assert_close(out.joints, lifted * factor)
    assert out.scale_sigma.item() == pytest.approx(sig_s, rel=1e-9)
    assert out.source[0, [p, lh]].tolist() == [SOURCE_FUSED] * 2
    assert (out.source[0, 3:] == SOURCE_LIFTED).all()
    # each joint: its variance less what the anchors explained, plus their model error with the gain's weight
    var_j = rel**2 + (z * s * sig_s) ** 2
    unc = math.sqrt(var_j - gain * var_g + (gain * 0.05) ** 2)
    torch.testing.assert_close(out.uncertainty, torch.full_like(out.uncertainty, unc))


def test_rescale_keeps_each_joint_s_own_error_and_replaces_the_placement_part():
    """Two joints 4 m away, the person's scale known to 2 %: uncertainty 10 cm = 6 cm of their own (the rest,
    4 m × 2 % = 8 cm, is the placement) and 5 cm, where the placement alone would exceed it (the floor keeps
    30 %). Moved 10 % farther with the scale now known to 3 %, by hand."""
    joints = torch.tensor([[[0.1, 0.2, 4.0], [-0.1, 0.5, 4.0]]], dtype=torch.float64)
    fused = Fused(
        joints,
        torch.tensor([[0.10, 0.05]], dtype=torch.float64),
        torch.tensor([[SOURCE_FUSED, SOURCE_LIFTED]], dtype=torch.uint8),
        joints[:, 0],
        torch.tensor([1.0], dtype=torch.float64),
        torch.tensor([0.02], dtype=torch.float64),
    )
    torch.testing.assert_close(relative_error(fused), torch.tensor([[0.06, 0.015]], dtype=torch.float64))
    out = rescale(fused, torch.tensor([1.1], dtype=torch.float64), torch.tensor([0.03], dtype=torch.float64))
    placement = 4.0 * 1.1 * 0.03
    expected = [math.hypot(0.06 * 1.1, placement), math.hypot(0.015 * 1.1, placement)]
    torch.testing.assert_close(out.uncertainty, torch.tensor([expected], dtype=torch.float64))
    torch.testing.assert_close(out.joints, joints * 1.1)
    torch.testing.assert_close(out.root, joints[:, 0] * 1.1)
    assert out.scale.item() == pytest.approx(1.1) and out.scale_sigma.item() == pytest.approx(0.03)
    assert torch.equal(out.source, fused.source)
