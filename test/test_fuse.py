"""Fusion of lifted joints with depth readouts: person scale, outlier joints, gating, sources, uncertainty."""

import math
from dataclasses import replace

import torch

from abspose import skeleton as sk
from abspose.depth import Readout
from abspose.fuse import SOURCE_DEPTH, SOURCE_FUSED, SOURCE_INVALID, SOURCE_LIFTED, FuseConfig, fuse, orient
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


def test_orient_turns_the_lifted_body_towards_the_measured_torso_plane():
    truth, kp, readout = _person(z=2.5)
    j = sk.JOINT_INDEX
    body = torch.zeros(1, sk.NUM_JOINTS, 3) + torch.tensor([0.0, 0.0, 2.5])  # an upright, frontal torso
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
