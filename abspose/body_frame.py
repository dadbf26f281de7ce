"""Orientation of a person's body frame, for the ``body_<id>`` TF frame.

Body frame (REP-103 for a body): origin at the pelvis, x forward out of the chest, y to the person's left,
z up along the spine. Built from the hip line and the shoulder line (left minus right, averaged) and the
pelvis-to-neck direction, expressed in the camera optical frame. When those joints are missing, the
frame falls back to "upright, facing the camera" so a TF is always well formed.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from abspose import skeleton as sk

_L = [sk.JOINT_INDEX["left_hip"], sk.JOINT_INDEX["left_shoulder"]]
_R = [sk.JOINT_INDEX["right_hip"], sk.JOINT_INDEX["right_shoulder"]]
_NECK = sk.JOINT_INDEX["neck"]
# Fallback in the camera optical frame (x right, y down, z forward) for a person facing the camera:
# up = -y, their left = image right = +x, so forward = y x z = -z (towards the camera).
_UP = np.array([0.0, -1.0, 0.0])
_LEFT = np.array([1.0, 0.0, 0.0])


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-9, n, np.nan)


def body_rotation(joints: np.ndarray) -> np.ndarray:
    """Rotation matrices [N, 3, 3] whose columns are the body x, y, z axes in the camera frame.

    joints: [N, J, 3] m in the camera frame (NaN joints allowed).
    """
    joints = np.asarray(joints, np.float64)
    with np.errstate(invalid="ignore"):
        lr = joints[:, _L] - joints[:, _R]  # [N, 2, 3] hip and shoulder lines, pointing to the left
        ok = np.isfinite(lr).all(-1, keepdims=True)
        left = _unit(np.where(ok, lr, 0).sum(1))
        up = _unit(joints[:, _NECK] - joints[:, sk.PELVIS])
        up = np.where(np.isfinite(up).all(-1, keepdims=True), up, _UP)
        left = np.where(np.isfinite(left).all(-1, keepdims=True), left, _LEFT)
        y = _unit(left - (left * up).sum(-1, keepdims=True) * up)  # left, orthogonal to the spine
        bad = ~np.isfinite(y).all(-1, keepdims=True)  # left parallel to the spine
        y = np.where(bad, _unit(_LEFT - (_LEFT * up).sum(-1, keepdims=True) * up), y)
        x = np.cross(y, up)
    return np.stack([x, y, up], axis=-1)


def body_quaternion(joints: np.ndarray) -> np.ndarray:
    """Quaternions [N, 4] (x, y, z, w; the geometry_msgs order) of :func:`body_rotation`."""
    if len(joints) == 0:
        return np.zeros((0, 4))
    return Rotation.from_matrix(body_rotation(joints)).as_quat()
