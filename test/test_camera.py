import json

import cv2
import numpy as np
import pytest
import torch

from abspose.camera import (
    CameraError,
    CameraModel,
    UncalibratedCameraError,
    UnsupportedDistortionError,
    load_camera_info,
)

from conftest import TUE_FRAMES, data_path

TUE_K = np.array([[537.0318, 0, 320.6603], [0, 537.5638, 227.6980], [0, 0, 1]])
TUE_D = np.array([0.028269, 0.048725, -0.001470, 0.002651, -0.492473])

# Real calibrations of each model: the TU/e Xtion (plumb_bob), an Azure Kinect colour camera
# (rational_polynomial, as its ROS driver publishes it) and a RealSense T265 fisheye (equidistant).
CAMERAS = {
    "plumb_bob": dict(k=TUE_K.ravel(), d=TUE_D, width=640, height=480),
    "rational_polynomial": dict(
        k=[[612.6, 0, 638.0], [0, 612.4, 367.7], [0, 0, 1]],
        d=[0.5164, -2.6218, 0.000712, -0.000279, 1.4710, 0.3969, -2.4487, 1.4016],
        width=1280,
        height=720,
    ),
    "equidistant": dict(
        k=[[285.7, 0, 420.6], [0, 285.8, 403.9], [0, 0, 1]],
        d=[-0.00481, 0.04158, -0.03912, 0.00703],
        width=848,
        height=800,
    ),
}


def make(model: str) -> CameraModel:
    info = dict(CAMERAS[model])
    info["k"] = np.asarray(info["k"], dtype=float).ravel()
    info["distortion_model"] = model
    return CameraModel.from_camera_info(info)


def pixel_grid(cam: CameraModel, step: int = 16) -> torch.Tensor:
    w, h = cam.image_size
    u, v = torch.meshgrid(torch.arange(0, w + 1, step.__float__()), torch.arange(0, h + 1, float(step)), indexing="xy")
    return torch.stack([u.ravel(), v.ravel()], dim=-1).double()


def fisheye_limit(cam: CameraModel) -> float:
    """Distorted radius of a ray at 90 degrees from the axis (equidistant model)."""
    th, d = np.pi / 2, cam.d
    return th * (1 + th**2 * d[0] + th**4 * d[1] + th**6 * d[2] + th**8 * d[3])


def normalized_radius(cam: CameraModel, raw: torch.Tensor) -> torch.Tensor:
    return ((raw - torch.tensor(cam.K[:2, 2])) / torch.tensor(np.diag(cam.K)[:2].copy())).norm(dim=-1)


@pytest.mark.parametrize("model", list(CAMERAS))
def test_distort_undistort_round_trip_under_001_px_across_the_image(model):
    cam = make(model)
    raw = pixel_grid(cam, 8)
    ideal = cam.undistort_pixels(raw)
    valid = torch.isfinite(ideal).all(dim=-1)
    # every pixel either maps back exactly or is NaN (outside the calibrated region), never a wrong point
    err = (cam.distort_pixels(ideal[valid]) - raw[valid]).norm(dim=-1)
    assert err.max() < 0.01, f"{model}: max round-trip error {err.max():.2e} px"
    again = cam.undistort_pixels(cam.distort_pixels(ideal[valid]))
    assert (again - ideal[valid]).norm(dim=-1).max() < 0.01
    assert (ideal[valid] - raw[valid]).norm(dim=-1).max() > 1.0  # the lens really distorts
    w, h = cam.image_size
    if model == "equidistant":  # NaN exactly where the ray would be at or past 90 degrees
        rd = normalized_radius(cam, raw)
        lim = fisheye_limit(cam)
        assert valid[rd < 0.999 * lim].all() and not valid[rd > 1.001 * lim].any()
    else:  # only the very corners may fall outside the polynomial's invertible range
        assert valid.float().mean() > 0.98
        corner_dist = torch.minimum(raw[:, 0], w - raw[:, 0]) + torch.minimum(raw[:, 1], h - raw[:, 1])
        assert (corner_dist[~valid] < 60).all()


@pytest.mark.parametrize("model", list(CAMERAS))
def test_distortion_matches_opencv(model):
    cam = make(model)
    K = cam.K
    D = cam.d
    grid = pixel_grid(cam, 40)
    raw = grid[torch.isfinite(cam.undistort_pixels(grid)).all(-1)].numpy()
    ideal = cam.undistort_pixels(torch.from_numpy(raw)).numpy()
    pts3 = np.concatenate([(ideal - K[:2, 2]) / np.diag(K)[:2], np.ones((len(ideal), 1))], axis=1)
    if model == "equidistant":
        proj, _ = cv2.fisheye.projectPoints(pts3[:, None, :], np.zeros(3), np.zeros(3), K, D)
        und = cv2.fisheye.undistortPoints(
            raw[:, None, :], K, D, P=K, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        )
    else:
        proj, _ = cv2.projectPoints(pts3, np.zeros(3), np.zeros(3), K, D)
        und = cv2.undistortPointsIter(
            raw[:, None, :], K, D, None, K, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-12)
        )
    # our undistort followed by OpenCV's own distortion gives back the raw pixel
    assert np.abs(proj.reshape(-1, 2) - raw).max() < 0.01
    # OpenCV's iterative undistortion agrees with ours (it converges less tightly at the corners)
    assert np.median(np.linalg.norm(und.reshape(-1, 2) - ideal, axis=1)) < 0.01


def test_project_and_back_project_are_inverse():
    cam = make("plumb_bob")
    raw = pixel_grid(cam, 32)
    raw = raw[torch.isfinite(cam.undistort_pixels(raw)).all(-1)]
    depth = torch.linspace(0.5, 8.0, len(raw), dtype=torch.float64)
    pts = cam.back_project(raw, depth)
    torch.testing.assert_close(pts[:, 2], depth)
    torch.testing.assert_close(cam.project(pts), raw, atol=1e-6, rtol=0)
    behind = cam.project(torch.tensor([[0.0, 0.0, -1.0]]))
    assert torch.isnan(behind).all()
    # without the lens: the pinhole K (x/z, y/z, 1), the undistorted pixels the points were made from
    ideal = cam.project(pts, distort=False)
    assert ideal.shape == raw.shape
    pinhole = (torch.from_numpy(cam.K) @ (pts / pts[:, 2:]).T).T[:, :2]
    torch.testing.assert_close(ideal, pinhole)
    torch.testing.assert_close(ideal, cam.undistort_pixels(raw), atol=1e-6, rtol=0)
    assert torch.isnan(cam.project(torch.tensor([[0.0, 0.0, -1.0]]), distort=False)).all()


def test_binning_and_roi_give_the_same_rays():
    full = make("plumb_bob")
    info = dict(
        CAMERAS["plumb_bob"],
        distortion_model="plumb_bob",
        binning_x=2,
        binning_y=2,
        roi=dict(x_offset=100, y_offset=40, width=400, height=320),
    )
    small = CameraModel.from_camera_info(info)
    assert small.image_size == (200, 160)
    uv_small = torch.tensor([[10.0, 20.0], [150.0, 120.0]], dtype=torch.float64)
    uv_full = uv_small * 2 + torch.tensor([100.0, 40.0], dtype=torch.float64)
    ray_small = small.back_project(uv_small, torch.ones(2))
    ray_full = full.back_project(uv_full, torch.ones(2))
    torch.testing.assert_close(ray_small, ray_full)
    # an ROI may reach the image's right and bottom edges, not beyond
    edge = dict(info, roi=dict(x_offset=240, y_offset=160, width=400, height=320))
    assert CameraModel.from_camera_info(edge).image_size == (200, 160)
    for roi in (
        dict(x_offset=241, y_offset=160, width=400, height=320),
        dict(x_offset=0, y_offset=161, width=8, height=320),
    ):
        with pytest.raises(CameraError, match="does not fit"):
            CameraModel.from_camera_info(dict(info, roi=roi))
    assert small.focal_length == pytest.approx(full.focal_length / 2)
    small.check_image(200, 160)
    with pytest.raises(CameraError, match="200x160"):
        small.check_image(640, 480)


def test_canonical_focal_length_is_geometric_mean():
    cam = make("plumb_bob")
    assert cam.focal_length == pytest.approx(np.sqrt(537.0318 * 537.5638), rel=1e-6)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(k=[0.0] * 9), UncalibratedCameraError, "uncalibrated"),
        (dict(k=[-500.0, 0, 320, 0, 500, 240, 0, 0, 1]), UncalibratedCameraError, "positive"),
        (dict(k=[0.0, 0, 320, 0, 500, 240, 0, 0, 1]), UncalibratedCameraError, "fx=0.0 fy=500.0"),
        (dict(k=[500.0, 0, 320, 0, 0, 240, 0, 0, 1]), UncalibratedCameraError, "fx=500.0 fy=0.0"),
        (dict(distortion_model="kannala_brandt_x"), UnsupportedDistortionError, "not supported"),
        (dict(d=[0.1] * 9), UnsupportedDistortionError, "at most 5"),
        (dict(d=[float("nan")] * 5), UnsupportedDistortionError, "not finite"),
        (dict(width=0), CameraError, "size"),
        (dict(roi=dict(x_offset=600, y_offset=0, width=100, height=10)), CameraError, "ROI"),
        (dict(distortion_model="", d=[0.1, 0, 0, 0, 0]), UnsupportedDistortionError, "empty"),
    ],
)
def test_bad_camera_info_raises_specific_errors(change, error, match):
    info = dict(CAMERAS["plumb_bob"], distortion_model="plumb_bob")
    info.update(change)
    with pytest.raises(error, match=match):
        CameraModel.from_camera_info(info)


def test_short_d_is_zero_padded_and_empty_model_without_d_is_pinhole():
    cam = CameraModel.from_camera_info(dict(k=TUE_K.ravel(), d=[], distortion_model="", width=640, height=480))
    assert not cam.has_distortion
    uv = torch.tensor([[5.0, 7.0]], dtype=torch.float64)
    torch.testing.assert_close(cam.undistort_pixels(uv), uv)


@pytest.mark.parametrize("stamp", TUE_FRAMES)
def test_tue_hero_camera_info_json_loads_to_documented_k_and_d(stamp):
    path = data_path("rgbd", "tue_hero", "frames", f"{stamp}_camera_info.json")
    cam = load_camera_info(path)
    np.testing.assert_allclose(cam.K, TUE_K, atol=1e-4)
    np.testing.assert_allclose(cam.d, TUE_D, atol=1e-6)
    assert cam.distortion_model == "plumb_bob" and cam.image_size == (640, 480)


def test_tue_hero_camera_info_from_the_ros2_bag_matches_the_json():
    from rosbags.highlevel import AnyReader

    bag = data_path("rgbd", "tue_hero", "tue_hero_rgbd_ros2_mcap")
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.msgtype == "sensor_msgs/msg/CameraInfo"]
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]
    assert len(msgs) == 5
    for msg in msgs:
        cam = CameraModel.from_camera_info(msg)
        np.testing.assert_allclose(cam.K, TUE_K, atol=1e-4)
        np.testing.assert_allclose(cam.d, TUE_D, atol=1e-6)


def test_ros1_bag_camera_info_with_upper_case_fields_loads():
    from rosbags.highlevel import AnyReader

    bag = sorted(data_path("rgbd", "tue_hero", "ros1_original").glob("*.bag"))[0]
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.msgtype.endswith("CameraInfo")]
        con, _, raw = next(iter(reader.messages(connections=conns)))
        msg = reader.deserialize(raw, con.msgtype)
    np.testing.assert_allclose(CameraModel.from_camera_info(msg).K, TUE_K, atol=1e-4)


def test_calibration_yaml_and_bad_files_name_the_file(tmp_path):
    yml = tmp_path / "cam.yaml"
    yml.write_text(
        "image_width: 640\nimage_height: 480\ncamera_name: x\n"
        f"camera_matrix: {{rows: 3, cols: 3, data: {TUE_K.ravel().tolist()}}}\n"
        "distortion_model: plumb_bob\n"
        f"distortion_coefficients: {{rows: 1, cols: 5, data: {TUE_D.tolist()}}}\n"
    )
    np.testing.assert_allclose(load_camera_info(yml).K, TUE_K)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"K": [0] * 9, "width": 640, "height": 480}))
    with pytest.raises(CameraError, match=r"bad\.json.*uncalibrated"):
        load_camera_info(bad)
    with pytest.raises(CameraError, match=r"missing\.json"):
        load_camera_info(tmp_path / "missing.json")
    trunc = tmp_path / "trunc.json"
    trunc.write_text('{"K": [1, 0')
    with pytest.raises(CameraError, match=r"trunc\.json"):
        load_camera_info(trunc)


def test_undistort_runs_on_float32_batches_and_keeps_nan():
    cam = make("plumb_bob")
    uv = torch.tensor([[[100.0, 50.0], [float("nan"), 3.0]]], dtype=torch.float32)
    out = cam.undistort_pixels(uv)
    assert out.shape == (1, 2, 2) and torch.isfinite(out[0, 0]).all() and torch.isnan(out[0, 1]).all()
