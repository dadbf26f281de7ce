"""The transforms of a recording (``/tf``, ``/tf_static``), looked up like tf2's Buffer, for the offline runner.

:class:`TransformStore` keeps each frame's transforms to its parent over time; :meth:`TransformStore.lookup`
chains them through the tree (via the common ancestor) at a stamp, interpolating between the two nearest
dynamic transforms (linear, slerp) and refusing stamps further than ``tolerance`` from any. The result is
the source frame's pose in the target frame, as ``lookup_transform(target, source, stamp)`` gives.
Stamps in ns; metres.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


class TransformError(LookupError):
    """No chain between the frames, or none near the stamp; the message says which."""


@dataclass
class _Edge:
    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    rotations: list[np.ndarray] = field(default_factory=list)  # quaternions x, y, z, w


class TransformStore:
    def __init__(self, tolerance: float = 0.5) -> None:
        self.tolerance_ns = int(tolerance * 1e9)  # s: how far from a recorded transform a lookup may be
        self.edges: dict[str, _Edge] = {}

    def add(self, message: Any, static: bool = False) -> None:
        """A tf2_msgs/TFMessage (its ``transforms``: geometry_msgs/TransformStamped)."""
        for t in message.transforms:
            child, parent = t.child_frame_id.lstrip("/"), t.header.frame_id.lstrip("/")
            stamp = int(t.header.stamp.sec) * 1_000_000_000 + int(t.header.stamp.nanosec)
            tr, q = t.transform.translation, t.transform.rotation
            edge = self.edges.get(child)
            if edge is None or edge.parent != parent or edge.static != static:
                edge = self.edges[child] = _Edge(parent, static)
            if static:
                edge.stamps, edge.translations, edge.rotations = [], [], []
            i = bisect.bisect(edge.stamps, stamp)
            edge.stamps.insert(i, stamp)
            edge.translations.insert(i, np.array([tr.x, tr.y, tr.z], np.float64))
            edge.rotations.insert(i, np.array([q.x, q.y, q.z, q.w], np.float64))

    def _edge_at(self, child: str, stamp: int) -> tuple[Rotation, np.ndarray]:
        edge = self.edges[child]
        if edge.static or len(edge.stamps) == 1:
            if not edge.static and abs(edge.stamps[0] - stamp) > self.tolerance_ns:
                raise TransformError(f"no transform {edge.parent} -> {child} near the stamp")
            return Rotation.from_quat(edge.rotations[0]), edge.translations[0]
        i = bisect.bisect(edge.stamps, stamp)
        lo, hi = max(i - 1, 0), min(i, len(edge.stamps) - 1)
        t0, t1 = edge.stamps[lo], edge.stamps[hi]
        if min(abs(t0 - stamp), abs(t1 - stamp)) > self.tolerance_ns:
            raise TransformError(f"no transform {edge.parent} -> {child} within the tolerance of the stamp")
        if lo == hi or t0 == t1:
            return Rotation.from_quat(edge.rotations[lo]), edge.translations[lo]
        w = min(max((stamp - t0) / (t1 - t0), 0.0), 1.0)
        rot = Slerp([0.0, 1.0], Rotation.from_quat([edge.rotations[lo], edge.rotations[hi]]))(w)
        return rot, (1 - w) * edge.translations[lo] + w * edge.translations[hi]

    def _to_root(self, frame: str, stamp: int) -> tuple[list[str], Rotation, np.ndarray]:
        """The frames from ``frame`` up to its root, and ``frame``'s pose in each step's parent composed up to
        the root."""
        chain, rot, trans = [frame], Rotation.identity(), np.zeros(3)
        while chain[-1] in self.edges and len(chain) < 100:
            r, t = self._edge_at(chain[-1], stamp)
            rot, trans = r * rot, r.apply(trans) + t
            chain.append(self.edges[chain[-1]].parent)
        return chain, rot, trans

    def lookup(self, target: str, source: str, stamp: int) -> tuple[np.ndarray, np.ndarray]:
        """``source``'s pose in ``target`` at ``stamp``: (quaternion x, y, z, w, translation [3] m)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        up_s, rot_s, t_s = self._to_root(source, stamp)
        up_t, rot_t, t_t = self._to_root(target, stamp)
        if up_s[-1] != up_t[-1]:
            raise TransformError(f"'{source}' and '{target}' are not connected in the recording's TF tree")
        inv = rot_t.inv()
        return (inv * rot_s).as_quat(), inv.apply(t_s - t_t)
