"""Synthesized training samples: geometry, handedness, bone lengths, detectability, depth readouts."""

import math

import pytest
import torch

from abspose import skeleton as sk
from abspose.training.dataset import load_mocap_set
from abspose.training.noise2d import NoiseModel
from abspose.training.stature import REFERENCE_STATURE, StaturePrior
from abspose.training.synth import (
    CONVENTION_BONES,
    IN,
    REFERENCE_BONES,
    CameraRange,
    DepthRange,
    bone_jitter,
    project,
    retarget,
    synthesize,
)

from conftest import DATA, data_path

J = sk.JOINT_INDEX


@pytest.fixture(scope="module")
def poses():
    data_path("mocap")
    train = load_mocap_set(DATA).split("train")
    g = torch.Generator().manual_seed(0)
    return train[torch.randint(len(train), (6000,), generator=g)]


@pytest.fixture(scope="module")
def clean(poses):
    return synthesize(poses, NoiseModel.clean(), g=torch.Generator().manual_seed(1))


def test_retarget_keeps_directions_and_sets_anatomical_lengths(poses):
    reference = StaturePrior(male_mean=REFERENCE_STATURE, male_sd=0.0, female_share=0.0)
    out, stature = retarget(poses[:2000], torch.Generator().manual_seed(3), reference, jitter=0.0)
    assert torch.all(stature == REFERENCE_STATURE)
    for k, (a, b) in enumerate(sk.BONE_INDEX):
        src, dst = poses[:2000, b] - poses[:2000, a], out[:, b] - out[:, a]
        length = REFERENCE_BONES[sk.BONES[k]]
        assert torch.allclose(dst.norm(dim=-1), torch.full((2000,), length), atol=1e-5)
        cos = torch.nn.functional.cosine_similarity(src, dst, dim=-1)
        assert cos[src.norm(dim=-1) > 1e-3].min() > 0.9999
    # derived joints stay midpoints after retargeting
    assert torch.allclose(out[:, J["pelvis"]], 0.5 * (out[:, J["left_hip"]] + out[:, J["right_hip"]]), atol=1e-5)
    shoulders = 0.5 * (out[:, J["left_shoulder"]] + out[:, J["right_shoulder"]])
    assert torch.allclose(out[:, J["neck"]], shoulders, atol=1e-5)


def test_retargeted_bodies_follow_the_stature_prior(poses):
    prior = StaturePrior()
    out, stature = retarget(poses[:4000], torch.Generator().manual_seed(4), prior, jitter=0.0)
    assert abs(stature.mean().item() - prior.mean) < 0.005 and 0.08 < stature.std().item() < 0.11
    leg = (out[:, J["left_knee"]] - out[:, J["left_hip"]]).norm(dim=-1)
    ref = REFERENCE_BONES[("left_hip", "left_knee")]
    torch.testing.assert_close(leg, ref * stature / REFERENCE_STATURE)  # lengths scale with stature
    # for their stature, women's shoulders are narrower and their hips wider than men's
    shoulder = (out[:, J["left_shoulder"]] - out[:, J["neck"]]).norm(dim=-1) / stature
    hip = (out[:, J["left_hip"]] - out[:, J["pelvis"]]).norm(dim=-1) / stature
    woman = shoulder < (shoulder.min() + shoulder.max()) / 2
    assert 0.4 < woman.float().mean() < 0.6
    assert hip[woman].min() > hip[~woman].max()


def test_convention_bones_vary_by_their_own_jitter(poses):
    """bone_jitter gives the bones whose length a joint convention sets (hips, shoulders, head, toes, spine) their
    own spread; a pair's sides stay alike, and the other bones keep theirs."""
    sd = bone_jitter(0.02, 0.12)
    assert sd[list(CONVENTION_BONES)].eq(0.12).all() and int(sd.eq(0.02).sum()) == len(sk.BONES) - 9
    reference = StaturePrior(male_mean=REFERENCE_STATURE, male_sd=0.0, female_share=0.0)
    out, _ = retarget(poses[:4000], torch.Generator().manual_seed(5), reference, jitter=sd)

    def ratio(a: str, b: str) -> torch.Tensor:
        return (out[:, J[b]] - out[:, J[a]]).norm(dim=-1) / REFERENCE_BONES[(a, b)]

    # paired bones: the mean of two draws (sd / sqrt 2); unpaired ones: one draw
    hip, head, thigh = ratio("pelvis", "left_hip"), ratio("neck", "head"), ratio("left_hip", "left_knee")
    assert 0.075 < hip.std().item() < 0.095 and 0.105 < head.std().item() < 0.135
    assert 0.012 < thigh.std().item() < 0.016
    torch.testing.assert_close(hip, ratio("pelvis", "right_hip"))
    assert bone_jitter(0.03).eq(0.03).all()


def test_cameras_see_upright_people_in_range(clean):
    b = clean
    assert len(b) > 1000
    z = b.joints[:, sk.PELVIS, 2]
    assert b.joints[:, sk.PELVIS].norm(dim=-1).min() > 0.8 and z.min() > 0.3 and z.max() < 12.5  # ≥ 0.8 m away
    assert z.quantile(0.1) < 1.7 and z.quantile(0.9) > 7  # the whole 0.8–12 m range is covered
    f = b.K[:, 0, 0]
    assert f.min() >= 300 and f.max() <= 2000
    assert b.K.shape == (len(b), 3, 3) and (b.K[:, 2] == torch.tensor([0.0, 0.0, 1.0])).all()
    # y is down in the optical frame: the head is above the pelvis for nearly all (some dance poses invert)
    assert (b.joints[:, J["head"], 1] < b.joints[:, sk.PELVIS, 1]).float().mean() > 0.97
    # clean 2D = exact projection; the head is always in the image (detectable people only)
    assert torch.allclose(b.keypoints, project(b.joints[:, IN], b.K), atol=1e-3)
    head = b.keypoints[:, sk.INPUT_JOINTS.index("head")]
    assert ((head >= 0) & (head <= b.image_size)).all()
    # some people are partly out of frame, and those joints are mostly marked missing
    outside = ((b.keypoints < 0) | (b.keypoints > b.image_size[:, None])).any(-1)
    assert outside.any(1).float().mean() > 0.05
    assert b.mask[outside].float().mean() < 0.35


def test_a_person_facing_the_camera_has_the_left_side_on_the_image_right(clean):
    """Handedness: the camera frame is right-handed like the mocap world, not a mirror of it."""
    b = clean
    lr = b.joints[:, J["left_hip"]] - b.joints[:, J["right_hip"]]
    up = b.joints[:, J["neck"]] - b.joints[:, sk.PELVIS]
    forward = torch.cross(lr, up, dim=-1)  # the body's forward (chest) direction, for a right-handed body
    facing = forward[:, 2] < -0.5 * forward.norm(dim=-1)  # chest towards the camera
    u = b.keypoints[..., 0]
    left_right = u[:, sk.INPUT_JOINTS.index("left_hip")] > u[:, sk.INPUT_JOINTS.index("right_hip")]
    assert facing.sum() > 100
    assert left_right[facing].float().mean() > 0.98


def test_forward_of_a_body_in_mocap_points_out_of_the_chest(poses):
    """The handedness test above relies on cross(left-right, up) being the chest direction: check it on
    mocap walking, where people move forward (the pelvis velocity follows the chest)."""
    data = load_mocap_set(DATA)
    walk = next(i for i, n in enumerate(data.clip_names) if n.startswith("expmap/train/walking"))
    p = torch.from_numpy(data.poses[data.clip == walk])
    lr = p[:, J["left_hip"]] - p[:, J["right_hip"]]
    up = p[:, J["neck"]] - p[:, sk.PELVIS]
    forward = torch.nn.functional.normalize(torch.cross(lr, up, dim=-1)[:, [0, 2]], dim=-1)
    vel = p[10:, sk.PELVIS] - p[:-10, sk.PELVIS]
    vel = torch.nn.functional.normalize(vel[:, [0, 2]], dim=-1)
    assert (forward[:-10] * vel).sum(-1).median() > 0.8


def test_mixture_noise_and_missing_joints(poses):
    g = torch.Generator().manual_seed(4)
    b = synthesize(poses, NoiseModel.default(), g=g)
    err = (b.keypoints - project(b.joints[:, IN], b.K)).norm(dim=-1)
    height = b.keypoints[..., 1].amax(1) - b.keypoints[..., 1].amin(1)
    rel = err / height[:, None]
    assert 0.01 < rel.median() < 0.05
    assert (rel > 0.1).float().mean() > 0.01  # outliers
    assert 0.75 < b.mask.float().mean() < 0.97
    pel, lh, rh = (sk.INPUT_JOINTS.index(n) for n in ("pelvis", "left_hip", "right_hip"))
    assert torch.equal(b.mask[:, pel], b.mask[:, lh] & b.mask[:, rh])


def test_depth_readouts_see_the_body_surface_with_sensor_effects(poses):
    g = torch.Generator().manual_seed(5)
    b = synthesize(poses, NoiseModel.default(), depth=DepthRange(fraction=1.0, outliers=0.0), g=g)
    z = b.joints[:, IN, 2]
    valid = torch.isfinite(b.depth)
    assert 0.3 < valid.float().mean() < 0.9
    assert b.depth[valid].max() < 10.0 + 1e-4  # range limit
    near = valid & (z < 3)
    offset = (z - b.depth)[near]
    assert 0.02 < offset.median() < 0.12  # surface in front of the joint
    far = valid & (z > 6)
    assert (z - b.depth)[far].std() > 3 * offset.std()  # noise grows with distance
    none = synthesize(poses[:500], NoiseModel.default(), depth=DepthRange(fraction=0.0), g=g)
    assert torch.isnan(none.depth).all()
    assert math.isclose(CameraRange().distance[1], 12.0)
