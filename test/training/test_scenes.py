"""RGB-D test scenes: people on one floor around the target, a registered binned depth camera."""

import pytest
import torch

from abspose import skeleton as sk
from abspose.depth import depth_to_metres
from abspose.training.dataset import load_mocap_set
from abspose.training.noise2d import NoiseModel
from abspose.training.render import SensorModel
from abspose.training.scenes import FEET, SceneRange, make_scenes, scene_depth, vary_girth

from conftest import data_path


@pytest.fixture(scope="module")
def val():
    return load_mocap_set(data_path("mocap").parent).split("val")


def _height_above(planes, points):
    """Signed height of points [S, P, 3] above the floor plane [S, 4] (n·p = d on it, n pointing up)."""
    n, d = planes[:, None, :3], planes[:, None, 3]
    return (points * n).sum(-1) - d


def test_people_stand_on_one_floor_apart_from_the_target(val):
    s = make_scenes(val, 200, 3, NoiseModel.default(), rng=SceneRange(others=(0.0, 0.0, 1.0)))
    again = make_scenes(val, 200, 3, NoiseModel.default(), rng=SceneRange(others=(0.0, 0.0, 1.0)))
    assert torch.equal(s.others.nan_to_num(), again.others.nan_to_num())  # reproducible from the seed
    floor = s.planes[:, 0]
    target_feet = _height_above(floor, s.targets.joints[:, FEET]).amin(1)
    assert target_feet.abs().max() < 1e-4
    present = torch.isfinite(s.others).all(-1).all(-1)
    assert present.float().mean() > 0.8
    feet = torch.stack([_height_above(floor, s.others[:, k, FEET]).amin(1) for k in range(2)], 1)[present]
    assert feet.abs().max() < 1e-3
    # pelvis to pelvis, along the floor, at least the minimum gap (pelvises sit at different heights)
    gap = (s.others[:, :, sk.PELVIS] - s.targets.joints[:, None, sk.PELVIS]).norm(dim=-1)[present]
    assert gap.min() > 0.45
    # on either side of the line of sight to the target, about as often (the camera's x is sideways)
    right = (s.others[:, :, sk.PELVIS, 0] > s.targets.joints[:, None, sk.PELVIS, 0])[present].float().mean()
    assert 0.3 < right < 0.7


def test_the_wall_stands_upright_behind_the_target(val):
    s = make_scenes(val, 100, 4, NoiseModel.default(), rng=SceneRange(wall=1.0))
    floor, wall = s.planes[:, 0], s.planes[:, 1]
    assert torch.isfinite(wall).all()
    torch.testing.assert_close(wall[:, :3].norm(dim=-1), torch.ones(len(s)))
    assert (wall[:, :3] * floor[:, :3]).sum(-1).abs().max() < 1e-5  # perpendicular to the floor
    # the camera and the target's pelvis on the same side, the pelvis wall_gap in front of it
    assert (wall[:, 3] > 0).all()
    pelvis = wall[:, 3] - (s.targets.joints[:, sk.PELVIS] * wall[:, :3]).sum(-1)
    lo, hi = SceneRange().wall_gap
    assert pelvis.min() > lo - 1e-4 and pelvis.max() < hi + 1e-4 and pelvis.max() - pelvis.min() > 2.0


def test_scene_depth_is_what_a_registered_depth_camera_sees(val):
    s = make_scenes(val, 40, 5, NoiseModel.default(), rng=SceneRange(others=(1.0, 0.0, 0.0), wall=1.0))
    perfect = SensorModel(noise=(0.0, 0.0), holes=(0.0, 0.0), dropout=0.0, flying=0.0, max_range=(20.0, 20.0))
    hits, on_head = 0, 0
    for i in range(len(s)):
        image, colour, depth = scene_depth(s, i, perfect)
        w, h = colour.image_size
        assert image.shape == (h // depth.binning_y, w // depth.binning_x) and image.shape[1] <= 848
        z = depth_to_metres(image, "16UC1")
        # the target's head joint (a 9 cm sphere around it) seen at its own depth where in the image
        head = s.targets.joints[i, sk.JOINT_INDEX["head"]]
        uv = depth.project(head[None].double(), distort=False)[0].round().long()
        if 0 <= uv[0] < image.shape[1] and 0 <= uv[1] < image.shape[0]:
            hits += 1
            assert z[uv[1], uv[0]] < head[2]  # nothing behind the head shows through it
            on_head += bool(head[2] - 0.095 < z[uv[1], uv[0]])  # else a hand or arm before the face
    assert hits > 30 and on_head >= hits - 2


def test_varied_girth_moves_each_body_surface_by_its_own_factor(val):
    s = make_scenes(val, 40, 5, NoiseModel.default(), rng=SceneRange(others=(1.0, 0.0, 0.0), wall=1.0))
    varied = vary_girth(s, 0.15, 9)
    assert torch.equal(varied.girth, vary_girth(s, 0.15, 9).girth)  # reproducible from the seed
    assert 0.1 < varied.girth.log().std() < 0.2
    perfect = SensorModel(noise=(0.0, 0.0), holes=(0.0, 0.0), dropout=0.0, flying=0.0, max_range=(20.0, 20.0))
    errors = []
    for i in range(len(s)):
        image, _, depth = scene_depth(s, i, perfect)
        thicker, _, _ = scene_depth(varied, i, perfect)
        # the head is a 9 cm sphere: under its centre the surface moves by 9 cm × (girth − 1)
        head = s.targets.joints[i, sk.JOINT_INDEX["head"]]
        u, v = depth.project(head[None].double(), distort=False)[0].round().long().tolist()
        if 0 <= u < image.shape[1] and 0 <= v < image.shape[0]:
            moved = (float(image[v, u]) - float(thicker[v, u])) / 1000  # 16UC1 mm
            errors.append(abs(moved - 0.09 * (float(varied.girth[i, 0]) - 1)))
    assert len(errors) > 30
    assert sorted(errors)[len(errors) // 2] < 0.003  # median (a hand before the face moves by its own factor)
