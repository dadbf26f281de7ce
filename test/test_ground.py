"""The ground plane: its sources (TF pose, height and pitch, RANSAC on depth) and the feet on it placing people."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from abspose import skeleton as sk
from abspose.camera import CameraModel, load_camera_info
from abspose.fuse import SOURCE_DEPTH, SOURCE_FUSED, SOURCE_GROUND, SOURCE_LIFTED, Fused, fuse, relative_error
from abspose.ground import (
    Contact,
    ContactConfig,
    GroundError,
    GroundPlane,
    contact,
    contact_many,
    fit_floor,
    place_on_ground,
)
from abspose.lifter import Lifter, lift
from abspose.training.dataset import load_mocap_set
from abspose.training.evaluate import activities, floor_planes, ground_predictor, lifter_predictor, on_floor
from abspose.training.noise2d import NoiseModel
from abspose.training.synth import CameraRange
from abspose.training.train import validation_set

from conftest import TUE_FRAMES, data_path, floor_depth_image

LEVEL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # optical -> x forward, z up


def test_height_and_pitch_match_the_tf_pose_of_the_same_camera():
    # a head camera 1.25 m up, 0.1 m forward of base_footprint, tilted 20 deg down: as TF gives it (quaternion)
    rot = Rotation.from_euler("Y", math.radians(20)).as_matrix() @ LEVEL
    tf = GroundPlane.from_transform(Rotation.from_matrix(rot).as_quat(), [0.1, 0.0, 1.25])
    hp = GroundPlane.from_height_pitch(1.25, math.radians(20))
    assert np.allclose(tf.up, hp.up) and tf.height == hp.height == 1.25
    assert math.degrees(tf.pitch) == pytest.approx(20.0)
    # the floor point straight below the camera's forward ray at 3 m along the floor is on the plane
    ahead = rot.T @ np.array([3.0 - 0.1, 0.0, -1.25])  # base_footprint point (3, 0, 0) in the camera frame
    assert np.dot(tf.up, ahead) == pytest.approx(-1.25)


def test_a_camera_under_the_floor_or_nan_is_refused():
    with pytest.raises(GroundError, match="above the floor"):
        GroundPlane.from_height_pitch(-0.5, 0.0)
    with pytest.raises(GroundError, match="finite"):
        GroundPlane((math.nan, -1.0, 0.0), 1.0)


@pytest.mark.parametrize("height, pitch", [(1.2, 15.0), (0.6, 0.0), (1.6, 35.0)])
def test_ransac_finds_the_floor_of_a_depth_image(height, pitch):
    cam = CameraModel.pinhole(537.0, 537.5, 320.7, 227.7, 640, 480)
    plane = GroundPlane.from_height_pitch(height, math.radians(pitch))
    found = fit_floor(floor_depth_image(plane, cam, np.random.default_rng(3)), cam, np.array([[280, 200, 360, 470]]))
    assert found is not None
    assert found.height == pytest.approx(height, abs=0.02)
    assert math.degrees(math.acos(min(1.0, float(np.dot(found.up, plane.up))))) < 1.0


@pytest.mark.parametrize("stamp", TUE_FRAMES)
def test_no_floor_is_made_up_where_the_depth_image_shows_none(stamp):
    """The TU/e robot's depth camera sees no floor (the hall's shiny floor reads as holes): the fit must say
    so rather than call a table or a row of people the floor."""
    frames = data_path("rgbd", "tue_hero", "frames")
    depth = torch.from_numpy(np.load(frames / f"{stamp}_depth_m.npy"))
    assert fit_floor(depth, load_camera_info(frames / f"{stamp}_camera_info.json")) is None


@pytest.fixture(scope="module")
def held_out():
    val = load_mocap_set(data_path("mocap").parent).split("val")
    return validation_set(val, 1500, 77, NoiseModel.default(), CameraRange())


def test_feet_on_the_true_floor_place_people_better_than_the_lifter(held_out):
    """Held-out mocap through random robot cameras, everyone < 6 m with feet on the floor: the node's ground
    path against the monocular lifter. Measured on 4000 samples: MRPE 191 -> 150 mm, MPJPE 81.9 -> 79.8."""
    b, model = held_out, Lifter.load()
    mono, ground = lifter_predictor(model)(b), ground_predictor(model)(b)
    gt = b.joints[:, sk.PELVIS]
    sel = on_floor(b) & (gt.norm(dim=-1) < 6)
    assert sel.sum() > 500
    err_mono = (mono.root - gt)[sel].norm(dim=-1).mean()
    err_ground = (ground.root - gt)[sel].norm(dim=-1).mean()
    assert err_ground < 0.87 * err_mono, (err_ground, err_mono)
    # the shape is the lifter's, only its size follows the distance: root-relative MPJPE no worse
    rel = lambda p: (p.joints - p.root[:, None] - (b.joints - gt[:, None]))[sel].norm(dim=-1).nanmean()  # noqa: E731
    assert rel(ground) <= rel(mono)


def _held_out_contact(held_out, n: int = 1500):
    """The node's monocular path on held-out people and their floors: (fused, contact inputs, contact)."""
    b, model = held_out, Lifter.load()
    kp = torch.zeros(n, sk.NUM_JOINTS, 2)
    conf = torch.zeros(n, sk.NUM_JOINTS)
    idx = torch.tensor(sk.INPUT_INDEX)
    kp[:, idx], conf[:, idx] = b.keypoints[:n], b.mask[:n].float()
    lifted = lift(model, kp, conf, b.K[:n])
    fused = fuse(lifted.joints, lifted.uncertainty, kp, b.K[:n], None)
    up, height = floor_planes(b)
    args = [relative_error(fused), kp, conf > 0, b.K[:n], up[:n], height[:n], b.image_size[:n]]
    return fused, args, contact_many(fused.joints, *args)


def test_contact_sources_and_what_falls_back(held_out):
    fused, args, found = _held_out_contact(held_out, 300)
    kp, conf, up = args[1], args[2].float(), args[4]
    placed = place_on_ground(fused, found)
    has = torch.isfinite(found.scale)
    assert 0.3 < has.float().mean() < 0.9
    grounded = (placed.source == SOURCE_GROUND).any(1)
    assert (grounded <= has).all() and grounded.sum() >= 0.95 * has.sum()  # the gate drops only a few
    assert ((placed.source == SOURCE_GROUND) | (placed.source != SOURCE_LIFTED)).all(1)[grounded].all()
    assert (placed.scale_sigma[grounded] < fused.scale_sigma[grounded]).all()  # two estimates beat one
    # feet not detected (cut off at the knees): no contact
    cut = conf.clone()
    cut[:, [sk.JOINT_INDEX[j] for j in ("left_ankle", "right_ankle", "left_foot", "right_foot")]] = 0
    assert not torch.isfinite(contact_many(fused.joints, args[0], kp, cut > 0, *args[3:]).scale).any()
    # lying on the floor (the head as low as the feet): no contact from the feet
    lying = fused.joints.clone()
    head = sk.JOINT_INDEX["head"]
    lying[:, head] = lying[:, head] - 2.0 * up
    assert not torch.isfinite(contact_many(lying, *args).scale).any()


def test_one_camera_contact_matches_the_batched_one():
    cam_K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    plane = GroundPlane.from_height_pitch(1.0, math.radians(10))
    g = torch.Generator().manual_seed(0)
    joints = torch.randn(4, sk.NUM_JOINTS, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.5, 4.0])
    kp = joints[..., :2] / joints[..., 2:] * 500 + torch.tensor([320.0, 240.0])
    rel = torch.full((4, sk.NUM_JOINTS), 0.05)
    usable = torch.ones(4, sk.NUM_JOINTS, dtype=torch.bool)
    one = contact(joints, rel, kp, usable, cam_K, plane, (640, 480))
    many = contact_many(
        joints, rel, kp, usable, cam_K.expand(4, 3, 3), plane.tensor().expand(4, 3), torch.full((4,), 1.0),
        torch.tensor([640.0, 480.0]).expand(4, 2), None, plane.height_sigma, plane.tilt_sigma,
    )  # fmt: skip
    assert torch.equal(one.touching, many.touching)
    assert torch.allclose(one.scale, many.scale, equal_nan=True)


def test_activity_groups_split_every_held_out_person_once(held_out):
    groups = activities(held_out)
    count = sum(g.long() for g in groups.values())
    assert (count == 1).all()
    sizes = {k: int(v.sum()) for k, v in groups.items()}
    assert sizes["activity: standing / walking"] > 0.8 * len(held_out)  # the shared mocap is mostly locomotion
    assert all(n > 0 for n in sizes.values()), sizes
    # feet off the floor: every foot joint higher than its contact height + 5 cm
    up, height = floor_planes(held_out)
    off = groups["activity: athletic (feet off the floor)"]
    feet = [sk.JOINT_INDEX[j] for j in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
    above = (held_out.joints[:, feet] * up[:, None]).sum(-1) + height[:, None]
    lowest = (above - torch.tensor([0.07, 0.07, 0.025, 0.025])).amin(1)
    assert (lowest[off] > 0.05).all() and (lowest[~off] <= 0.05).all()


def test_a_noise_free_floor_is_fitted_exactly():
    """Every depth pixel of a rendered floor, no noise, no holes: the fit is the floor to the millimetre (a ray
    of the wrong pixel — a one-pixel shift of the sampled grid — tilts it by more than that)."""
    cam = CameraModel.pinhole(537.0, 537.5, 320.7, 227.7, 640, 480)
    for height, pitch in ((1.2, 15.0), (0.5, 30.0)):
        plane = GroundPlane.from_height_pitch(height, math.radians(pitch))
        w, h = cam.image_size
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        ray = np.stack([(u - cam.K[0, 2]) / cam.K[0, 0], (v - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(u)], -1)
        along = ray @ np.array(plane.up)
        z = np.where(along < -1e-3, plane.height / -np.where(along < -1e-3, along, -1.0), np.nan)
        found = fit_floor(torch.from_numpy(z.astype(np.float32)), cam)
        assert found is not None
        assert found.height == pytest.approx(height, abs=0.001)
        assert math.degrees(math.acos(min(1.0, float(np.dot(found.up, plane.up))))) < 0.05


def test_the_contact_scale_is_as_uncertain_as_it_says(held_out):
    """Held-out people whose feet truly touch the floor: the contact's scale against the one that puts the
    lifted pelvis at its true depth. Measured on these 1,500 samples (916 with a contact, feet on the floor):
    median error 2.8 %, 98 % within 2σ, median |error| / σ 0.36 (σ errs on the safe side: a Gaussian's 0.67)."""
    fused, _, found = _held_out_contact(held_out)
    n = len(fused.scale)
    true = held_out.joints[:n, sk.PELVIS, 2] / fused.root[:, 2]
    sel = torch.isfinite(found.scale) & on_floor(held_out)[:n]
    assert sel.sum() > 300
    err = (found.scale - true)[sel]
    assert (err / true[sel]).abs().median() < 0.045
    within = (err.abs() <= 2 * found.sigma[sel]).float().mean()
    ratio = (err.abs() / found.sigma[sel]).median()
    assert within > 0.9 and 0.2 < ratio < 0.6, (within, ratio)


def test_a_foot_at_the_image_edge_does_not_touch(held_out):
    """A foot keypoint within ``border`` px of the right edge may be cut off: it gives no contact."""
    fused, args, found = _held_out_contact(held_out, 300)
    touching = found.touching
    has = touching.any(1)
    x = torch.where(touching, args[1][..., 0], torch.tensor(-1.0)).amax(1)  # the rightmost touching foot
    edge = args[6].clone().to(fused.joints)
    edge[:, 0] = torch.where(has, x.floor() + 2.0, edge[:, 0])  # that foot now 1-2 px from the edge
    rightmost = touching & (args[1][..., 0] == x[:, None])
    cut = contact_many(fused.joints, *args[:6], edge).touching
    assert has.sum() > 50 and not (cut & rightmost)[has].any()
    roomy = edge.clone()
    roomy[:, 0] += 10.0
    assert torch.equal(contact_many(fused.joints, *args[:6], roomy).touching[has], touching[has])


def test_the_contact_is_fused_with_the_lifter_by_inverse_variance_unless_they_disagree():
    """Monocular people (scale σ 5 %, contacts ± 3 %): a contact at 1.04; one at 1.17, inside the χ² 99.9 %
    gate (0.17² < 10.83 (0.05² + 0.03²)); 0.70 and 1.30, beyond it both ways; one person already scaled by
    1.1 (a track's scale) with a contact at 1.15; and a person placed by depth (its joints fused, read or
    lifted), who keeps it."""
    contacts = [1.04, 1.17, 0.70, 1.30, 1.15, 1.04]
    n, j = len(contacts), sk.NUM_JOINTS
    scale = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.1, 1.0])
    joints = torch.tensor([0.0, 0.0, 4.0]) * scale[:, None, None].expand(n, j, 3)
    source = torch.full((n, j), SOURCE_LIFTED, dtype=torch.uint8)
    source[5, : j // 2] = SOURCE_FUSED  # placed by depth: the joints with readouts fused, the others lifted
    source[5, j // 2 :: 3] = SOURCE_DEPTH
    fused = Fused(joints, torch.full((n, j), 0.2), source, joints[:, 0], scale, torch.full((n,), 0.05))
    found = Contact(torch.tensor(contacts), torch.full((n,), 0.03), torch.zeros(n, j, dtype=torch.bool))
    placed = place_on_ground(fused, found)
    w_l, w_g = 0.05**-2, 0.03**-2
    for k in (0, 1, 4):
        s = (w_l * scale[k].item() + w_g * contacts[k]) / (w_l + w_g)
        assert placed.scale[k].item() == pytest.approx(s, rel=1e-6)
        assert placed.scale_sigma[k].item() == pytest.approx((w_l + w_g) ** -0.5, rel=1e-6)
        assert placed.root[k, 2].item() == pytest.approx(4.0 * s, rel=1e-6)
        assert (placed.source[k] == SOURCE_GROUND).all()
    for k in (2, 3, 5):  # refused both ways; depth keeps its own placement
        assert placed.scale[k] == 1.0 and placed.scale_sigma[k] == 0.05
        assert torch.equal(placed.source[k], source[k])


def test_the_contact_sigma_is_the_sum_of_its_named_parts():
    """One ankle on the floor 4 m ahead of a level camera 1.2 m up (f = 500 px): scale 1 exactly, and its
    relative σ² the sum of the parts the docstring names — the keypoint's row error (2 % of the person's
    2D height) through the ray's slope, the ankle's contact height (± 3 cm of 1.13 m), the lifted ankle's
    relative depth error (± 0.1 m of 4 m), the camera height (± 2 cm) and tilt (± 0.01 rad over the slope)."""
    K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    plane = GroundPlane.from_height_pitch(1.2, 0.0)
    joints = torch.tensor([0.0, 0.0, 4.0]).repeat(1, sk.NUM_JOINTS, 1)
    ankle = sk.JOINT_INDEX["left_ankle"]
    joints[0, ankle] = torch.tensor([0.0, 1.13, 4.0])  # 7 cm above the floor: its contact height
    kp = joints[..., :2] / joints[..., 2:] * 500 + torch.tensor([320.0, 240.0])
    rel = torch.full((1, sk.NUM_JOINTS), 0.1)
    cfg = ContactConfig(joints=("left_ankle",), joint_height=(0.07,), joint_height_sigma=(0.03,))
    found = contact(joints, rel, kp, torch.ones(1, sk.NUM_JOINTS, dtype=torch.bool), K, plane, (640, 480), cfg)
    assert found.touching[0, ankle] and found.touching.sum() == 1
    assert found.scale.item() == pytest.approx(1.0, rel=1e-6)
    slope = 1.13 / 4.0  # the ankle's ray: metres down per metre ahead
    pixel = 0.02 * (kp[0, ankle, 1] - 240.0).item() / 500 / slope
    parts = [pixel, 0.03 / 1.13, 0.1 / 4.0, 0.02 / 1.13, 0.01 / slope]
    assert found.sigma.item() == pytest.approx(math.sqrt(sum(p * p for p in parts)), rel=1e-5)
