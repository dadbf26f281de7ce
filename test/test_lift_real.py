"""Real images: BlazePose + the shipped lifter (monocular) put the TU/e near person at the depth the
depth camera measures."""

import numpy as np
import pytest
import torch

from abspose import skeleton as sk
from abspose.camera import load_camera_info
from abspose.lifter import Lifter, lift

from conftest import TUE_FRAMES, data_path, read_rgb


@pytest.mark.parametrize("stamp", TUE_FRAMES)
def test_near_person_pelvis_depth_matches_the_depth_image(stamp, blazepose):
    frames = data_path("rgbd", "tue_hero", "frames")
    rgb = read_rgb(frames / f"{stamp}_rgb.png")
    depth = np.load(frames / f"{stamp}_depth_m.npy")
    cam = load_camera_info(frames / f"{stamp}_camera_info.json")
    poses = blazepose()(rgb)
    assert len(poses) >= 1
    keypoints = cam.undistort_pixels(poses.keypoints.double()).float()
    res = lift(Lifter.load(), keypoints, poses.confidence, torch.tensor(cam.K, dtype=torch.float32))
    near = int(torch.argmin(res.root[:, 2]))
    u, v = poses.keypoints[near, sk.PELVIS].round().int().tolist()
    patch = depth[v - 8 : v + 9, u - 8 : u + 9]
    surface = float(np.nanmedian(patch))
    assert 1.6 < surface < 2.1  # the data README's near person
    lifted = float(res.root[near, 2])
    assert abs(lifted - surface) / surface < 0.15, f"lifted {lifted:.2f} m vs depth {surface:.2f} m"
