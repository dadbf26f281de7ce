"""Core results out as ROS messages: the skeleton array, RViz markers and TF frames.

Everything is stamped with the input image's stamp and frame_id (the camera optical frame). Messages are
built through :class:`~abspose.ros.messages.MessageTypes`, so the node publishes exactly what the offline
runner writes and the tests serialize to CDR.

- ``SkeletonArray``: every track of the frame (tentative, confirmed, coasting, and once when ended).
- ``MarkerArray``: per shown person one LINE_LIST (bones), one SPHERE_LIST (joints) and one
  TEXT_VIEW_FACING label ("<id> <distance> m"), colour by id, marker id = the track number in namespaces
  ``bones``/``joints``/``labels``; DELETE for tracks that ended; a single DELETEALL when nobody is shown.
- TF: ``body_<id>`` at the pelvis, oriented by :mod:`abspose.body_frame` (x forward, z up), parent =
  image frame; optionally ``<joint>_<id>`` per valid joint under it (translation only).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from abspose import skeleton as sk
from abspose.body_frame import body_rotation
from abspose.ros.messages import MessageTypes, typename
from abspose.track import COASTING, CONFIRMED, TENTATIVE

MARKER_NAMESPACES = ("bones", "joints", "labels")
_BONES = np.array(sk.BONE_INDEX)


@dataclass
class Person:
    """One tracked person to publish. Arrays: root [3] m, velocity [3] m/s, joints [J, 3] m, uncertainty [J]
    m, source [J] (fuse.SOURCE_*), keypoints [J, 2] px (NaN: not seen in this image), confidence [J]."""

    id: str
    number: int
    state: int
    score: float
    root: np.ndarray
    velocity: np.ndarray
    joints: np.ndarray
    uncertainty: np.ndarray
    source: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray

    def shown(self, tentative: bool = False) -> bool:
        """Whether markers and TF show this person (confirmed or coasting, optionally tentative)."""
        return self.state in (CONFIRMED, COASTING) or (tentative and self.state == TENTATIVE)


def header(T: MessageTypes, stamp_ns: int, frame_id: str) -> Any:
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return T.make(
        "std_msgs/msg/Header", stamp=T.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec), frame_id=frame_id
    )


def _point(T: MessageTypes, xyz: np.ndarray, name: str = "geometry_msgs/msg/Point") -> Any:
    x, y, z = (float(v) for v in xyz)
    return T.make(name, x=x, y=y, z=z)


def skeleton_array(T: MessageTypes, hdr: Any, people: list[Person]) -> Any:
    """The package message: all people of one frame, every per-joint array in JOINT_NAMES order."""
    skeletons = []
    for p in people:
        skeletons.append(
            T.make(
                typename("Skeleton"),
                id=p.id,
                track_state=int(p.state),
                score=float(p.score),
                root=_point(T, p.root),
                root_velocity=_point(T, p.velocity, "geometry_msgs/msg/Vector3"),
                joints=[_point(T, j) for j in p.joints],
                joint_uncertainty=np.asarray(p.uncertainty, np.float32),
                joint_source=np.asarray(p.source, np.uint8),
                keypoints=[T.make(typename("Keypoint2D"), u=float(u), v=float(v)) for u, v in p.keypoints],
                keypoint_confidence=np.asarray(p.confidence, np.float32),
            )
        )
    return T.make(
        typename("SkeletonArray"),
        header=hdr,
        skeleton=sk.SKELETON_NAME,
        joint_names=list(sk.JOINT_NAMES),
        skeletons=skeletons,
    )


def colour(number: int) -> tuple[float, float, float]:
    """A distinct, stable RGB colour per track number (golden-ratio hue steps)."""
    return colorsys.hsv_to_rgb((number * 0.618033988749895) % 1.0, 0.75, 0.95)


def marker_array(
    T: MessageTypes, hdr: Any, people: list[Person], ended: list[Person], lifetime: float = 1.0, tentative: bool = False
) -> Any:
    """RViz markers for the shown people, DELETE for ``ended``, one DELETEALL when nobody is shown."""
    Marker = T["visualization_msgs/msg/Marker"]
    sec, nsec = divmod(round(lifetime * 1e9), 1_000_000_000)
    life = T.make("builtin_interfaces/msg/Duration", sec=sec, nanosec=nsec)
    identity = T.make("geometry_msgs/msg/Pose", orientation=T.make("geometry_msgs/msg/Quaternion", w=1.0))

    def marker(ns: str, number: int, kind: int, action: int = Marker.ADD, **fields: Any) -> Any:
        return T.make(
            "visualization_msgs/msg/Marker",
            header=hdr,
            ns=ns,
            id=int(number),
            type=kind,
            action=action,
            pose=fields.pop("pose", identity),
            lifetime=life,
            **fields,
        )

    shown = [p for p in people if p.shown(tentative)]
    markers = [marker(ns, p.number, Marker.SPHERE_LIST, Marker.DELETE) for p in ended for ns in MARKER_NAMESPACES]
    if not shown:
        markers.append(marker("", 0, Marker.SPHERE_LIST, Marker.DELETEALL))
    for p in shown:
        r, g, b = colour(p.number)
        a = 0.5 if p.state != CONFIRMED else 1.0
        rgba = T.make("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=a)
        ok = np.isfinite(p.joints).all(-1)
        bones = _BONES[ok[_BONES].all(-1)]
        markers.append(
            marker(
                "bones",
                p.number,
                Marker.LINE_LIST,
                color=rgba,
                scale=T.make("geometry_msgs/msg/Vector3", x=0.03),
                points=[_point(T, p.joints[j]) for j in bones.ravel()],
            )
        )
        markers.append(
            marker(
                "joints",
                p.number,
                Marker.SPHERE_LIST,
                color=rgba,
                scale=T.make("geometry_msgs/msg/Vector3", x=0.06, y=0.06, z=0.06),
                points=[_point(T, j) for j in p.joints[ok]],
            )
        )
        top = p.joints[sk.JOINT_INDEX["head"]] if ok[sk.JOINT_INDEX["head"]] else p.root
        label = T.make(
            "geometry_msgs/msg/Pose",
            position=_point(T, top + [0.0, -0.3, 0.0]),
            orientation=T.make("geometry_msgs/msg/Quaternion", w=1.0),
        )
        white = T.make("std_msgs/msg/ColorRGBA", r=1.0, g=1.0, b=1.0, a=1.0)
        markers.append(
            marker(
                "labels",
                p.number,
                Marker.TEXT_VIEW_FACING,
                pose=label,
                color=white,
                scale=T.make("geometry_msgs/msg/Vector3", z=0.15),
                text=f"{p.id} {np.linalg.norm(p.root):.1f} m",
            )
        )
    return T.make("visualization_msgs/msg/MarkerArray", markers=markers)


def body_frame_id(track_id: str) -> str:
    return f"body_{track_id}"


def transforms(
    T: MessageTypes, hdr: Any, people: list[Person], joint_frames: bool = False, tentative: bool = False
) -> list[Any]:
    """TransformStamped list: ``body_<id>`` per shown person with a finite root (+ ``<joint>_<id>``)."""
    shown = [p for p in people if p.shown(tentative) and np.isfinite(p.root).all()]
    if not shown:
        return []
    joints = np.stack([p.joints for p in shown])
    rotations = body_rotation(joints)
    quats = Rotation.from_matrix(rotations).as_quat()
    out = []
    for p, q, R in zip(shown, quats, rotations, strict=True):
        body = body_frame_id(p.id)
        rot = T.make("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))
        tf = T.make(
            "geometry_msgs/msg/Transform", translation=_point(T, p.root, "geometry_msgs/msg/Vector3"), rotation=rot
        )
        out.append(T.make("geometry_msgs/msg/TransformStamped", header=hdr, child_frame_id=body, transform=tf))
        if not joint_frames:
            continue
        local = (p.joints - p.root) @ R  # camera -> body frame: R^T (j - root), row-vector form
        body_hdr = T.make("std_msgs/msg/Header", stamp=hdr.stamp, frame_id=body)
        unit = T.make("geometry_msgs/msg/Quaternion", w=1.0)
        for name, xyz in zip(sk.JOINT_NAMES, local, strict=True):
            if name == "pelvis" or not np.isfinite(xyz).all():
                continue
            tf = T.make(
                "geometry_msgs/msg/Transform", translation=_point(T, xyz, "geometry_msgs/msg/Vector3"), rotation=unit
            )
            out.append(
                T.make(
                    "geometry_msgs/msg/TransformStamped", header=body_hdr, child_frame_id=f"{name}_{p.id}", transform=tf
                )
            )
    return out


def tf_message(T: MessageTypes, tfs: list[Any]) -> Any:
    return T.make("tf2_msgs/msg/TFMessage", transforms=tfs)
