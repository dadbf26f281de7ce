"""Depth images: units by encoding, registered/scaled/unregistered geometry, robust per-joint readout."""

import math

import numpy as np
import pytest
import torch

from abspose import skeleton as sk
from abspose.camera import CameraModel
from abspose.depth import (
    DepthConfig,
    DepthError,
    _sample,
    depth_pixels,
    depth_to_metres,
    read_depth,
    register_depth,
)

J = sk.JOINT_INDEX


def _camera(w=640, h=480, f=540.0, d=(0.0, 0.0, 0.0, 0.0, 0.0)):
    return CameraModel.from_camera_info(
        {
            "width": w,
            "height": h,
            "distortion_model": "plumb_bob",
            "d": list(d),
            "k": [f, 0, w / 2, 0, f, h / 2, 0, 0, 1],
        }
    )


def test_units_come_from_the_encoding_and_invalid_pixels_are_nan():
    mm = np.array([[0, 1500], [65535, 800]], dtype=np.uint16)
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1").numpy(), [[np.nan, 1.5], [65.535, 0.8]], rtol=1e-6)
    m = np.array([[np.nan, 1.5], [np.inf, -1.0]], dtype=np.float32)
    np.testing.assert_allclose(depth_to_metres(m, "32FC1").numpy(), [[np.nan, 1.5], [np.nan, np.nan]])
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1", scale=0.0001).numpy()[0, 1], 0.15, rtol=1e-6)
    with pytest.raises(DepthError, match="unsupported depth encoding 'rgb8'"):
        depth_to_metres(mm, "rgb8")
    with pytest.raises(DepthError, match="needs uint16"):
        depth_to_metres(m, "16UC1")  # metres sent as millimetres: refused, not guessed
    with pytest.raises(DepthError, match="non-empty"):
        depth_to_metres(np.zeros((0, 4), np.float32), "32FC1")
    # a single-channel HxWx1 array (as cv_bridge and some drivers give) is the same image
    np.testing.assert_array_equal(depth_to_metres(mm[..., None], "16UC1").numpy(), depth_to_metres(mm, "16UC1").numpy())
    with pytest.raises(DepthError, match=r"HxW and non-empty, got shape \(2, 2, 2\)"):
        depth_to_metres(np.dstack([mm, mm]), "16UC1")


def test_registered_depth_at_another_resolution_maps_through_its_own_intrinsics():
    color = _camera(640, 480, 540.0, (0.03, 0.05, -0.001, 0.002, -0.49))
    depth = _camera(320, 240, 270.0, (0.03, 0.05, -0.001, 0.002, -0.49))
    ideal = torch.tensor([[[320.0, 240.0], [100.0, 50.0], [600.0, 400.0]]])
    px = depth_pixels(ideal, color, depth)
    # the same ray: distorting in the colour camera then halving gives the depth pixel (same D, K/2)
    raw_color = color.distort_pixels(ideal.double())
    assert torch.allclose(px, raw_color / 2, atol=1e-6)


def test_unregistered_depth_is_reprojected_with_the_transform():
    cam = _camera(320, 240, 300.0)
    plane = torch.full((240, 320), 2.0)
    shifted = register_depth(plane, cam, cam, np.eye(3), np.array([0.1, 0.0, 0.0]))
    # a plane 2 m away seen from 10 cm to the left moves 300 * 0.1 / 2 = 15 px: the left columns are empty
    assert torch.isnan(shifted[:, :14]).all() and torch.allclose(shifted[:, 20:-5], torch.tensor(2.0))
    nearer = register_depth(plane, cam, cam, np.eye(3), np.array([0.0, 0.0, -0.5]))
    assert torch.allclose(nearer[120, 160], torch.tensor(1.5))


def _scene():
    """Background wall at 5 m, a 'person' slab at 2 m (columns 100-200), an occluder at 1 m, holes."""
    d = torch.full((240, 320), 5.0)
    d[40:220, 100:200] = 2.0
    d[100:130, 180:230] = 1.0  # an arm of someone in front
    d[60:80, 120:140] = float("nan")  # a hole
    return d


def _keypoints():
    kp = torch.zeros(1, sk.NUM_JOINTS, 2)
    kp[0, :, 0] = torch.linspace(110, 190, sk.NUM_JOINTS)
    kp[0, :, 1] = torch.linspace(50, 210, sk.NUM_JOINTS)
    return kp


def test_depth_is_sampled_at_the_nearest_pixel_edges_included():
    depth = torch.arange(12, dtype=torch.float32).reshape(3, 4)  # row r, column c holds 4 r + c
    pts = torch.tensor([[0.0, 0.0], [3.0, 2.0], [-0.4, 0.3], [3.4, 1.6], [0.0, 2.0], [3.0, 0.0]])
    assert _sample(depth, pts).tolist() == [0.0, 11.0, 0.0, 11.0, 8.0, 3.0]
    outside = torch.tensor([[-0.6, 0.0], [3.6, 0.0], [0.0, -0.6], [0.0, 2.6], [float("nan"), 1.0]])
    assert torch.isnan(_sample(depth, outside)).all()


def test_readout_rejects_background_and_occluders_and_survives_holes():
    d = _scene()
    kp = _keypoints()
    kp[0, J["left_wrist"]] = torch.tensor([185.0, 115.0])  # on the occluder, next to the body
    kp[0, J["right_wrist"]] = torch.tensor([198.0, 150.0])  # on the body's edge, half background
    kp[0, J["head"]] = torch.tensor([139.0, 70.0])  # at the edge of a hole: read from the valid part
    mask = torch.ones(1, sk.NUM_JOINTS, dtype=torch.bool)
    r = read_depth(d, kp, mask, DepthConfig(max_patch=8))
    body = r.valid[0]
    assert torch.allclose(r.surface[0][body], torch.tensor(2.0))
    assert r.valid[0, J["right_wrist"]] and r.valid[0, J["head"]]
    assert not r.valid[0, J["left_wrist"]] or r.surface[0, J["left_wrist"]] == 2.0  # never the 1 m occluder
    assert (r.sigma[0][body] > 0.015).all() and (r.sigma[0][body] < 0.05).all()


def test_readout_uncertainty_grows_with_distance_and_masks_work():
    kp = _keypoints()
    mask = torch.ones(1, sk.NUM_JOINTS, dtype=torch.bool)
    mask[0, J["left_knee"]] = False
    near = read_depth(torch.full((240, 320), 1.0), kp, mask)
    far = read_depth(torch.full((240, 320), 6.0), kp, mask)
    assert not near.valid[0, J["left_knee"]] and torch.isnan(near.surface[0, J["left_knee"]])
    ratio = far.sigma[0, J["pelvis"]] / near.sigma[0, J["pelvis"]]
    assert ratio > 3  # ∝ z² once sensor noise dominates the floor
    nothing = read_depth(torch.full((240, 320), float("nan")), kp, mask)
    assert not nothing.valid.any()
    none = torch.zeros(0, sk.NUM_JOINTS, dtype=torch.bool)
    empty = read_depth(torch.ones(10, 10), torch.zeros(0, sk.NUM_JOINTS, 2), none)
    assert empty.surface.shape == (0, sk.NUM_JOINTS)


def _plane_image(yaw_deg: float, z0: float = 2.0, f: float = 540.0, w: int = 640, h: int = 480):
    """Depth [h, w] of a plane through (0, 0, z0) whose normal is turned by ``yaw`` about the camera's y axis,
    and the shoulder/hip keypoints of a 36 x 50 cm torso on it (pixels, K with f and the image centre)."""
    yaw = math.radians(yaw_deg)
    n = torch.tensor([math.sin(yaw), 0.0, -math.cos(yaw)])  # facing the camera
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    rays = torch.stack([(u - w / 2) / f, (v - h / 2) / f, torch.ones_like(u)], -1)
    depth = (n[2] * z0) / (rays @ n)  # t with n . (t ray) = n . (0, 0, z0); z = t
    lateral = torch.tensor([math.cos(yaw), 0.0, math.sin(yaw)])
    corners = {
        "left_shoulder": (0.18, -0.25),
        "right_shoulder": (-0.18, -0.25),
        "right_hip": (-0.18, 0.25),
        "left_hip": (0.18, 0.25),
    }
    kp = torch.full((1, sk.NUM_JOINTS, 2), float("nan"))
    for name, (x, y) in corners.items():
        p = torch.tensor([0.0, y, z0]) + x * lateral
        kp[0, sk.JOINT_INDEX[name]] = p[:2] / p[2] * f + torch.tensor([w / 2, h / 2])
    return depth, kp, (kp - torch.tensor([w / 2, h / 2])) / f


def _yaw(normal: torch.Tensor) -> float:
    return math.degrees(math.atan2(float(normal[0]), -float(normal[2])))


def test_torso_plane_measures_which_way_the_torso_faces():
    for yaw in (0.0, 25.0, -40.0):
        depth, kp, rays = _plane_image(yaw)
        mask = torch.isfinite(kp).all(-1)
        r = read_depth(depth, kp, mask, rays=rays)
        assert abs(_yaw(r.torso_normal[0]) - yaw) < 1.0, (yaw, r.torso_normal)
        assert float(r.torso_sigma[0]) < math.radians(1.0)
    # an arm held 15 cm before a fifth of the torso is rejected by the robust fit
    depth, kp, rays = _plane_image(25.0)
    x0, x1 = int(kp[0, :, 0].nan_to_num(1e9).min()), int(kp[0, :, 0].nan_to_num(-1e9).max())
    y0 = int(kp[0, sk.JOINT_INDEX["left_shoulder"], 1])
    depth[y0 + 20 : y0 + 45, x0:x1] -= 0.15
    r = read_depth(depth, kp, torch.isfinite(kp).all(-1), rays=rays)
    assert abs(_yaw(r.torso_normal[0]) - 25.0) < 2.0
    # and an arm held 12 cm before a third of the torso's width, on either side (the one that turns the plane)
    for yaw in (25.0, -40.0):
        for side in ("left", "right"):
            depth, kp, rays = _plane_image(yaw)
            x0, x1 = int(kp[0, :, 0].nan_to_num(1e9).min()), int(kp[0, :, 0].nan_to_num(-1e9).max())
            y0, y1 = (int(kp[0, sk.JOINT_INDEX[n], 1]) for n in ("left_shoulder", "left_hip"))
            third = (x1 - x0) // 3
            cols = slice(x0, x0 + third) if side == "left" else slice(x1 - third, x1)
            depth[y0:y1, cols] -= 0.12
            normal = read_depth(depth, kp, torch.isfinite(kp).all(-1), rays=rays).torso_normal[0]
            true = torch.tensor([math.sin(math.radians(yaw)), 0.0, -math.cos(math.radians(yaw))])
            off = math.degrees(math.acos(float((normal * true).sum().clamp(-1, 1))))
            assert off < 1.0, (yaw, side, off)
    # without the torso's corners, or on a hole, no plane; without rays, not measured
    mask = torch.isfinite(kp).all(-1)
    mask[0, sk.JOINT_INDEX["left_hip"]] = False
    assert torch.isnan(read_depth(depth, kp, mask, rays=rays).torso_normal).all()
    holes = torch.full_like(depth, float("nan"))
    assert torch.isnan(read_depth(holes, kp, torch.isfinite(kp).all(-1), rays=rays).torso_normal).all()
    assert read_depth(depth, kp, torch.isfinite(kp).all(-1)).torso_normal is None


def test_several_people_are_read_as_each_alone(blazepose):
    """All people in one pass give each person's readout and torso plane as if read alone (the patch size
    was broadcast per joint: any frame with two people crashed the readout)."""
    from abspose.camera import load_camera_info
    from abspose.depth import read_registered

    from conftest import TUE_FRAMES, data_path, read_depth_mm, read_rgb

    frames = data_path("rgbd", "tue_hero", "frames")
    cam = load_camera_info(frames / f"{TUE_FRAMES[0]}_camera_info.json")
    z = np.load(frames / f"{TUE_FRAMES[0]}_depth_m.npy")
    poses = blazepose()(read_rgb(frames / f"{TUE_FRAMES[0]}_rgb.png"))
    kp = cam.undistort_pixels(poses.keypoints[:1].double()).float()
    people = torch.cat([kp, kp + torch.tensor([-90.0, 0.0]), kp + torch.tensor([70.0, 10.0])])  # 3 people
    usable = torch.isfinite(people).all(-1)
    together = read_registered(people, usable, cam, z, "32FC1", None)
    for i in range(len(people)):
        alone = read_registered(people[i : i + 1], usable[i : i + 1], cam, z, "32FC1", None)
        torch.testing.assert_close(together.surface[i], alone.surface[0], equal_nan=True)
        torch.testing.assert_close(together.sigma[i], alone.sigma[0], equal_nan=True)
        torch.testing.assert_close(together.torso_normal[i], alone.torso_normal[0], equal_nan=True)
    assert torch.isfinite(together.surface[0]).sum() >= 10
    # without an encoding it is taken from the pixels: the same frame as uint16 mm (16UC1) reads the same
    mm = read_depth_mm(frames / f"{TUE_FRAMES[0]}_depth_mm.png")
    assert mm.dtype == np.uint16
    for image in (mm, z.astype(np.float32)):
        r = read_registered(people[:1], usable[:1], cam, image, None, None)
        torch.testing.assert_close(r.surface[0], together.surface[0], atol=2e-3, rtol=0, equal_nan=True)
