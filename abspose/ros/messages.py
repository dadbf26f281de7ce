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
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype
from rosbags.typesys.store import Typestore

ROS_PACKAGE = "abspose_ros"
MESSAGE_NAMES: tuple[str, ...] = ("Keypoint2D", "Skeleton", "SkeletonArray")


def msg_dir() -> Path:
    """Directory holding the package's .msg files: the source tree, a pip install, or a ROS install."""
    candidates = [Path(__file__).resolve().parents[2] / "msg"]  # source tree: abspose/ros/ -> repo root
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


_NUMPY_TYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


class MessageTypes:
    """Message classes by full ROS 2 name ('visualization_msgs/msg/Marker'), from rclpy or from rosbags.

    :meth:`make` builds a message from the fields we set. rclpy's generated classes default every other
    field themselves; for rosbags types (plain dataclasses) the defaults are filled in from the typestore's
    field definitions. Code written against :meth:`make` therefore builds the same messages for the node
    (rclpy, published) and for the offline runner and tests (rosbags, serialized to CDR).
    """

    def __init__(self, store: Typestore | None = None) -> None:
        self.store = store  # None: rclpy's generated message modules

    @classmethod
    def rosbags(cls) -> MessageTypes:
        return cls(typestore())

    def __getitem__(self, name: str) -> type:
        if self.store is not None:
            return self.store.types[name]
        import importlib

        package, _, short = name.split("/")
        return getattr(importlib.import_module(f"{package}.msg"), short)

    def uint8_array(self, data: bytes) -> Any:
        """A ``uint8[]`` field value: array('B') for rclpy (no per-byte checks), numpy for rosbags."""
        if self.store is None:
            import array

            return array.array("B", data)
        return np.frombuffer(data, np.uint8).copy()

    def make(self, name: str, **fields: Any) -> Any:
        cls = self[name]
        if self.store is None:
            return cls(**fields)
        _, defs = self.store.fielddefs[name]
        for field_name, desc in defs:
            if field_name not in fields:
                fields[field_name] = self._default(desc)
        return cls(**fields)

    def _default(self, desc: tuple) -> Any:
        kind, arg = desc
        if kind == Nodetype.BASE:
            base = arg[0]
            return "" if base in ("string", "wstring") else (False if base == "bool" else _NUMPY_TYPES[base](0).item())
        if kind == Nodetype.NAME:
            return self.make(arg)
        (sub_kind, sub_arg), length = arg
        if sub_kind == Nodetype.BASE and sub_arg[0] in _NUMPY_TYPES:
            return np.zeros(length if kind == Nodetype.ARRAY else 0, dtype=_NUMPY_TYPES[sub_arg[0]])
        return [self._default((sub_kind, sub_arg)) for _ in range(length if kind == Nodetype.ARRAY else 0)]
