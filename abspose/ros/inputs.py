"""ROS messages in: sensor_msgs/Image -> numpy arrays, header stamps -> nanoseconds.

Written against message fields, so rclpy messages and rosbags messages (ROS 1 or 2) both work. Every
check a broken driver can fail (unknown encoding, step too small, truncated data, empty image) raises
:class:`~abspose.image.ImageError` with what is wrong; the caller logs it and skips the frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from abspose.depth import DEPTH_ENCODINGS, DepthError
from abspose.image import ENCODINGS, ImageError

# encoding -> (channels, dtype) for everything we read: colour/mono images and depth images
_LAYOUTS: dict[str, tuple[int, type]] = {enc: (c, dt) for enc, (c, dt, _) in ENCODINGS.items()}
_LAYOUTS.update({"32FC1": (1, np.float32)})


def stamp_ns(header: Any) -> int:
    """Header stamp as integer nanoseconds (ROS 2 sec/nanosec or ROS 1 secs/nsecs)."""
    stamp = header.stamp
    if hasattr(stamp, "sec"):
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return int(stamp.secs) * 1_000_000_000 + int(stamp.nsecs)


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
    if data.size < step * h:  # last row without padding
        data = np.concatenate([data, np.zeros(step * h - data.size, np.uint8)])
    rows = data[: step * h].reshape(h, step)[:, :row]
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
