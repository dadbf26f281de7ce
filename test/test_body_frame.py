"""Body frame: x forward out of the chest, y left, z up, right-handed, from hips and shoulders."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from abspose import skeleton as sk
from abspose.body_frame import body_quaternion, body_rotation
from abspose.training.dataset import load_mocap_set

from conftest import DATA, data_path


def t_pose_facing_camera(z: float = 3.0) -> np.ndarray:
    """A person 3 m in front of the camera, facing it (optical frame: x right, y down, z forward)."""
    j = np.full((sk.NUM_JOINTS, 3), np.nan)
    j[sk.PELVIS] = [0, 0, z]
    # facing the camera, their left hand is on the image right (+x)
    j[sk.JOINT_INDEX["left_hip"]] = [0.1, 0, z]
    j[sk.JOINT_INDEX["right_hip"]] = [-0.1, 0, z]
    j[sk.JOINT_INDEX["left_shoulder"]] = [0.2, -0.5, z]
    j[sk.JOINT_INDEX["right_shoulder"]] = [-0.2, -0.5, z]
    j[sk.JOINT_INDEX["neck"]] = [0, -0.5, z]
    return j


def _turned(j: np.ndarray, rot: Rotation) -> np.ndarray:
    """The person ``j`` [J, 3] turned by ``rot`` about their pelvis (missing joints stay NaN)."""
    centre = j[sk.PELVIS].copy()
    return np.where(np.isfinite(j), rot.apply(np.nan_to_num(j - centre)) + centre, np.nan)


def test_person_facing_the_camera_looks_back_along_minus_z():
    R = body_rotation(t_pose_facing_camera()[None])[0]
    np.testing.assert_allclose(R[:, 0], [0, 0, -1], atol=1e-9)  # forward: towards the camera
    np.testing.assert_allclose(R[:, 1], [1, 0, 0], atol=1e-9)  # their left: image right
    np.testing.assert_allclose(R[:, 2], [0, -1, 0], atol=1e-9)  # up: image up
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_turning_the_person_turns_the_frame_and_quaternions_are_unit():
    j = t_pose_facing_camera()
    rot = Rotation.from_euler("y", 90, degrees=True)  # turn about the camera's vertical axis
    turned = _turned(j, rot)
    R0, R1 = body_rotation(np.stack([j, turned]))
    np.testing.assert_allclose(R1, rot.as_matrix() @ R0, atol=1e-9)
    q = body_quaternion(np.stack([j, turned]))
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0)


def test_missing_joints_fall_back_to_a_valid_frame():
    j = np.full((2, sk.NUM_JOINTS, 3), np.nan)
    j[1, sk.PELVIS] = [0, 0, 2]
    j[1, sk.JOINT_INDEX["left_hip"]] = [0.1, 0, 2]  # right hip missing, no shoulders, no neck
    R = body_rotation(j)
    assert np.isfinite(R).all()
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-9)
    assert body_quaternion(np.zeros((0, sk.NUM_JOINTS, 3))).shape == (0, 4)


def _orthogonal(v: np.ndarray, up: np.ndarray) -> np.ndarray:
    w = v - (v @ up) * up
    return w / np.linalg.norm(w)


def test_each_person_of_a_batch_gets_the_frame_it_gets_alone():
    """Missing joints of one person change neither another's frame nor the axes their own seen joints give."""
    L, R = sk.JOINT_INDEX, sk.PELVIS
    twisted = t_pose_facing_camera()  # shoulders turned 30 deg against the hips, then the whole body tilted
    twist = Rotation.from_euler("y", 30, degrees=True)
    for n in ("left_shoulder", "right_shoulder"):
        twisted[L[n]] = twist.apply(twisted[L[n]] - twisted[L["neck"]]) + twisted[L["neck"]]
    twisted = _turned(twisted, Rotation.from_euler("yx", [35, 20], degrees=True))
    no_shoulders = _turned(t_pose_facing_camera(), Rotation.from_euler("y", 90, degrees=True))
    no_shoulders[[L["left_shoulder"], L["right_shoulder"]]] = np.nan
    no_neck = twisted.copy()
    no_neck[L["neck"]] = np.nan
    spine_only = np.full_like(twisted, np.nan)  # no hip or shoulder line: the left falls back to the image's
    spine_only[[R, L["neck"]]] = twisted[[R, L["neck"]]]
    lying = t_pose_facing_camera()  # hip and shoulder lines along the spine: no left orthogonal to it
    for side, sign in (("left", -1), ("right", 1)):
        lying[L[f"{side}_hip"]] = [0, sign * 0.1, 3.0]
        lying[L[f"{side}_shoulder"]] = [0, -0.5 + sign * 0.2, 3.0]
    lying = _turned(lying, Rotation.from_euler("z", 30, degrees=True))  # rolled in the image: not square to x
    batch = np.stack([twisted, no_shoulders, no_neck, spine_only, lying, t_pose_facing_camera()])
    rot = body_rotation(batch)
    for i, person in enumerate(batch):
        np.testing.assert_allclose(rot[i], body_rotation(person[None])[0], atol=1e-12)
        np.testing.assert_allclose(rot[i].T @ rot[i], np.eye(3), atol=1e-9)
    up = (twisted[L["neck"]] - twisted[R]) / np.linalg.norm(twisted[L["neck"]] - twisted[R])
    lines = sum(twisted[L[f"left_{n}"]] - twisted[L[f"right_{n}"]] for n in ("hip", "shoulder"))
    np.testing.assert_allclose(rot[0][:, 2], up, atol=1e-9)
    np.testing.assert_allclose(rot[0][:, 1], _orthogonal(lines, up), atol=1e-9)  # both lines, summed
    # without shoulders their left is the hip line, turned 90 degrees about the vertical: the camera's -z
    np.testing.assert_allclose(rot[1][:, 1], [0, 0, -1], atol=1e-9)
    # without a neck, up falls back to the image's up and the left is the lines' left made orthogonal to it
    image_up = np.array([0.0, -1.0, 0.0])
    np.testing.assert_allclose(rot[2][:, 2], image_up, atol=1e-9)
    np.testing.assert_allclose(rot[2][:, 1], _orthogonal(lines, image_up), atol=1e-9)
    np.testing.assert_allclose(rot[3][:, 1], _orthogonal(np.array([1.0, 0, 0]), up), atol=1e-9)  # image right
    spine = (lying[L["neck"]] - lying[R]) / np.linalg.norm(lying[L["neck"]] - lying[R])
    np.testing.assert_allclose(rot[4][:, 1], _orthogonal(np.array([1.0, 0, 0]), spine), atol=1e-9)  # likewise
    np.testing.assert_allclose(rot[5], body_rotation(t_pose_facing_camera()[None])[0])


def test_quaternions_are_the_rotations_in_geometry_msgs_order():
    j = _turned(t_pose_facing_camera(), Rotation.from_euler("y", 90, degrees=True))
    q = body_quaternion(j[None])
    assert q.shape == (1, 4)
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), body_rotation(j[None]), atol=1e-9)
    facing = body_quaternion(t_pose_facing_camera()[None])[0]  # x, y, z, w: [[0,1,0],[0,0,-1],[-1,0,0]]
    np.testing.assert_allclose(np.abs(facing), [0.5, 0.5, 0.5, 0.5], atol=1e-9)


def test_walking_mocap_moves_along_body_x():
    """On real walking clips the pelvis moves along the body frame's +x (forward) axis."""
    data_path("mocap")
    mocap = load_mocap_set(DATA)
    names = [n for n in mocap.clip_names if "walking" in n]
    assert names, "no walking clip in the mocap set"
    for name in names[:3]:
        poses = mocap.poses[mocap.clip == mocap.clip_names.index(name)].astype(np.float64)
        cam = poses * [1, -1, -1]  # Y-up world -> a y-down frame by a proper rotation (180 deg about x)
        R = body_rotation(cam)
        step = cam[10:, sk.PELVIS] - cam[:-10, sk.PELVIS]  # 1/3 s of motion
        moving = np.linalg.norm(step, axis=-1) > 0.2
        cos = np.einsum("nd,nd->n", _unit(step[moving]), R[:-10][moving][:, :, 0])
        assert moving.sum() > 30 and np.median(cos) > 0.9, name


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)
