"""ROS messages in: sensor_msgs/Image -> numpy arrays, header stamps -> nanoseconds.

Written against message fields, so rclpy messages and rosbags messages (ROS 1 or 2) both work. Every
check a broken driver can fail (unknown encoding, step too small, truncated data, empty image) raises
:class:`~abspose.image.ImageError` with what is wrong; the caller logs it and skips the frame.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from abspose.depth import DEPTH_ENCODINGS, DepthError
from abspose.image import ENCODINGS, ImageError

# encoding -> (channels, dtype) for everything we read: colour/mono images and depth images
_LAYOUTS: dict[str, tuple[int, type]] = {enc: (c, dt) for enc, (c, dt, _) in ENCODINGS.items()}
_LAYOUTS.update({"32FC1": (1, np.float32)})


def _sec_nsec(stamp: Any) -> tuple[int, int]:
    """(sec, nanosec) of a ROS 2 (sec/nanosec) or ROS 1 (secs/nsecs) time."""
    return (int(stamp.sec), int(stamp.nanosec)) if hasattr(stamp, "sec") else (int(stamp.secs), int(stamp.nsecs))


def stamp_ns(header: Any) -> int:
    """Header stamp as integer nanoseconds (ROS 2 sec/nanosec or ROS 1 secs/nsecs)."""
    sec, nsec = _sec_nsec(header.stamp)
    return sec * 1_000_000_000 + nsec


def check_header(header: Any, id_prefix: str = "") -> tuple[int, str]:
    """(stamp ns, frame_id) of a header the outputs can carry unchanged; ImageError saying what is wrong with
    a stamp ROS 2 cannot hold (nanosec >= 1e9, sec outside int32) or a frame_id TF cannot take (empty, or one
    of the frames this node publishes under it: body_<id>, <joint>_<id>)."""
    sec, nsec = _sec_nsec(header.stamp)
    if not 0 <= nsec < 1_000_000_000:
        raise ImageError(f"header stamp nanosec {nsec} is not in [0, 1e9)")
    if not -(2**31) <= sec < 2**31:
        raise ImageError(f"header stamp sec {sec} does not fit a ROS 2 time (int32)")
    frame = str(header.frame_id)
    if not frame.strip():
        raise ImageError("header frame_id is empty: the outputs would have no frame to be in")
    if id_prefix and (frame.startswith("body_") or re.fullmatch(rf"[a-z_]+_{re.escape(id_prefix)}\d+", frame)):
        raise ImageError(f"header frame_id '{frame}' is a frame this node publishes (body_<id>, <joint>_<id>)")
    return sec * 1_000_000_000 + nsec, frame


def image_array(msg: Any) -> tuple[np.ndarray, str]:
    """(HxW or HxWxC array in native byte order, encoding) from a sensor_msgs/Image."""
    enc = str(msg.encoding)
    if enc not in _LAYOUTS:
        raise ImageError(f"unsupported image encoding '{enc}' (supported: {', '.join(_LAYOUTS)})")
    channels, dtype = _LAYOUTS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageError(f"empty image ({w}x{h})")
    row = w * channels * np.dtype(dtype).itemsize
    if step < row:
        raise ImageError(f"step {step} is smaller than width x pixel size = {row} bytes for {w}x{h} '{enc}'")
    data = np.frombuffer(memoryview(msg.data).cast("B"), np.uint8)
    if data.size < step * (h - 1) + row:
        raise ImageError(f"image data truncated: {data.size} bytes for {h} rows of step {step} ('{enc}', {w}x{h})")
    # h rows of `row` bytes, `step` apart (the last row's padding may be missing); no copy beyond the pixels,
    # whatever step claims
    rows = np.lib.stride_tricks.as_strided(data, shape=(h, row), strides=(step, 1), writeable=False)
    wire = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")  # one-byte types ignore the order
    arr = np.ascontiguousarray(rows).view(wire).reshape(h, w, channels).astype(dtype, copy=False)  # to native
    if not arr.flags.writeable:  # torch cannot wrap read-only message buffers
        arr = arr.copy()
    return (arr[..., 0] if channels == 1 else arr), enc


def depth_array(msg: Any) -> tuple[np.ndarray, str]:
    """(HxW array, encoding) from a depth sensor_msgs/Image (16UC1/mono16 mm, 32FC1 m)."""
    if str(msg.encoding) not in DEPTH_ENCODINGS:
        raise DepthError(f"unsupported depth encoding '{msg.encoding}' (supported: {', '.join(DEPTH_ENCODINGS)})")
    return image_array(msg)
