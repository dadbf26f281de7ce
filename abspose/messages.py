"""The package's ROS message definitions as `rosbags` types (no ROS needed).

The ``.msg`` files in ``msg/`` are the single source: colcon generates rclpy classes from them, and this
module registers them with a rosbags typestore so the offline runner and the tests build, serialize (CDR)
and read the very same messages.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

ROS_PACKAGE = "abspose_ros"
MESSAGE_NAMES: tuple[str, ...] = ("Keypoint2D", "Skeleton", "SkeletonArray")


def msg_dir() -> Path:
    """Directory holding the package's .msg files: the source tree, a pip install, or a ROS install."""
    candidates = [Path(__file__).resolve().parent.parent / "msg"]
    for prefix in (sysconfig.get_path("data"), sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        if prefix:
            candidates.append(Path(prefix) / "share" / ROS_PACKAGE / "msg")
    for path in candidates:
        if all((path / f"{name}.msg").is_file() for name in MESSAGE_NAMES):
            return path
    raise FileNotFoundError(f"message definitions {MESSAGE_NAMES} not found in any of {[str(p) for p in candidates]}")


def typename(name: str) -> str:
    """Full ROS 2 type name of one of our messages, e.g. 'abspose_ros/msg/Skeleton'."""
    return f"{ROS_PACKAGE}/msg/{name}"


@lru_cache(maxsize=4)
def typestore(store: Stores = Stores.ROS2_JAZZY) -> Typestore:
    """A rosbags typestore of the given ROS distribution with our messages registered."""
    ts = get_typestore(store)
    folder = msg_dir()
    types: dict = {}
    for name in MESSAGE_NAMES:
        path = folder / f"{name}.msg"
        types.update(get_types_from_msg(path.read_text(), typename(name)))
    ts.register(types)
    return ts
