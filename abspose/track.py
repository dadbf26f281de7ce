"""Multi-person tracking: stable string ids, confirmation, coasting through occlusions, smoothing, velocity.

Per frame, existing tracks are matched to detections by the Hungarian method
(``scipy.optimize.linear_sum_assignment``) on a cost that mixes the 3D root distance (to the track's
constant-velocity prediction, metres) with 2D box overlap (1 − IoU): depth jitter far away and 2D
crossings near the camera each get caught by the other term. A pair is allowed when the root is within
``max_distance`` *or* the boxes overlap by ``min_iou``. Tracks start TENTATIVE, are CONFIRMED after
``confirm_hits`` matches, COAST (predicted forward) while unseen for up to ``max_age`` seconds, then END
(reported once). A tentative track missed once ends silently. Ids are ``<prefix><n>`` with n counting up
from 1 and never reused within one :class:`Tracker`.

Frame: whatever frame the roots are in (the camera optical frame in the pipeline); time in seconds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from abspose.body_scale import BodyScale, BodyScaleConfig
from abspose.smoothing import OneEuroConfig, OneEuroFilter

TENTATIVE, CONFIRMED, COASTING, ENDED = 0, 1, 2, 3  # = abspose_ros/msg/Skeleton TRACK_*
_FORBIDDEN = 1e6
MAX_EXTRAPOLATION = 1.0  # s: the longest a coasting track's root is carried along its velocity


@dataclass
class TrackConfig:
    max_distance: float = 1.0  # m: largest root jump (after prediction) that may still be the same person
    min_iou: float = 0.3  # 2D box overlap that allows a match even when the 3D roots are far apart
    weight_2d: float = 1.0  # weight of (1 - IoU) against root distance / max_distance in the cost
    confirm_hits: int = 3  # matches needed before a track is confirmed
    max_age: float = 1.0  # s: how long a confirmed track coasts unseen before it ends
    velocity_smoothing: float = 0.5  # s: time constant of the root velocity estimate
    smoothing: bool = True  # One-Euro filter on the joints
    one_euro: OneEuroConfig = field(default_factory=OneEuroConfig)
    id_prefix: str = "p"  # ids are prefix + counter; must start with a letter
    body_scale: bool = True  # keep each person's measured scale for the frames only the lifter sees (body_scale.py)
    scale: BodyScaleConfig = field(default_factory=BodyScaleConfig)

    def __post_init__(self) -> None:
        if not self.id_prefix[:1].isalpha():
            raise ValueError(f"track id_prefix must start with a letter, got '{self.id_prefix}'")


@dataclass
class Track:
    """One person over time. root [3] m, velocity [3] m/s (NaN until two observations), joints [J, 3] m."""

    id: str
    number: int  # the counter in the id: stable per track, used as the marker id
    state: int
    root: np.ndarray
    velocity: np.ndarray
    joints: np.ndarray
    box: np.ndarray  # [4] x0, y0, x1, y1 px of the last observation
    last_seen: float
    hits: int = 1
    detection: int = -1  # index of this frame's detection, -1 when not observed in this frame
    observed_root: np.ndarray | None = None  # last unsmoothed root [3] m, for the velocity
    filter: OneEuroFilter | None = None
    body: BodyScale | None = None
    factor: float = 1.0  # what the track's scale multiplied this frame's detection by (1: kept as measured)
    scale_sigma: float = float("nan")  # the detection's relative scale σ after that

    def predicted_root(self, t: float) -> np.ndarray:
        """Root at time t (s) under constant velocity since the last observation, for at most
        ``MAX_EXTRAPOLATION`` s (then it holds: nobody walks on in a straight line for long unseen)."""
        return self.root + np.nan_to_num(self.velocity) * min(max(0.0, t - self.last_seen), MAX_EXTRAPOLATION)

    def predicted_joints(self, t: float) -> np.ndarray:
        """Joints [J, 3] carried along with the predicted root (= the observed joints when seen at t)."""
        return self.joints + (self.predicted_root(t) - self.root)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [M, 4] and b [N, 4] (x0, y0, x1, y1) -> [M, N]; 0 where a box is NaN."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    return np.nan_to_num(iou, nan=0.0)


def keypoint_boxes(keypoints: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """2D boxes [N, 4] px around the usable keypoints [N, J, 2] (mask [N, J]); NaN rows for none."""
    pts = np.where(usable[..., None], keypoints, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> NaN boxes
        return np.concatenate([np.nanmin(pts, axis=1), np.nanmax(pts, axis=1)], axis=-1)


class Tracker:
    """Call :meth:`update` once per frame, in time order; a jump back in time restarts the tracker."""

    def __init__(self, cfg: TrackConfig | None = None) -> None:
        self.cfg = cfg or TrackConfig()
        self.tracks: list[Track] = []
        self._next = 1
        self._t: float | None = None
        self._scales: np.ndarray | None = None

    def _new_number(self) -> int:
        self._next += 1
        return self._next - 1

    def reset(self) -> list[Track]:
        """End every track (ids are not reused afterwards); returns the ended tracks."""
        ended = [t for t in self.tracks if t.state != TENTATIVE]
        for t in ended:
            t.state, t.detection = ENDED, -1
        self.tracks, self._t = [], None
        return ended

    def cost(self, t: float, roots: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Assignment cost [tracks, detections]; _FORBIDDEN where the pair is gated out."""
        if not self.tracks or not len(roots):
            return np.zeros((len(self.tracks), len(roots)))
        pred = np.stack([tr.predicted_root(t) for tr in self.tracks])
        dist = np.linalg.norm(pred[:, None] - roots[None], axis=-1)  # NaN when either root is unknown
        iou = box_iou(np.stack([tr.box for tr in self.tracks]), boxes)
        near = np.nan_to_num(dist, nan=np.inf) <= self.cfg.max_distance
        allowed = near | (iou >= self.cfg.min_iou)
        d = np.where(np.isfinite(dist), np.minimum(dist, 2 * self.cfg.max_distance), 2 * self.cfg.max_distance)
        c = d / self.cfg.max_distance + self.cfg.weight_2d * (1.0 - iou)
        return np.where(allowed, c, _FORBIDDEN)

    def update(
        self, t: float, roots: np.ndarray, boxes: np.ndarray, joints: np.ndarray, scales: np.ndarray | None = None
    ) -> list[Track]:
        """Detections at time ``t`` s: roots [N, 3] m (NaN: unknown), boxes [N, 4] px, joints [N, J, 3] m;
        ``scales`` [N, 3]: each detection's scale, its relative σ and how it was measured (body_scale's
        MEASURED_DEPTH, MEASURED_GROUND, LIFTER_ONLY), for the per-track scale (``body_scale``).

        Returns every live track (TENTATIVE, CONFIRMED, COASTING; ``detection`` says which detection it
        took, -1 when coasting) followed by the tracks that ended in this frame (state ENDED, once).
        The tracks are updated in place by the next call: read what you need before calling again.
        """
        ended: list[Track] = []
        if self._t is not None and t < self._t:
            ended = self.reset()
        self._t = t
        for tr in self.tracks:  # too long unseen: ended before matching, never revived
            if t - tr.last_seen > self.cfg.max_age and tr.state != TENTATIVE:
                tr.state, tr.detection = ENDED, -1
                ended.append(tr)
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= self.cfg.max_age]
        roots = np.asarray(roots, np.float64).reshape(-1, 3)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        joints = np.asarray(joints, np.float64)
        self._scales = None if scales is None or not self.cfg.body_scale else np.asarray(scales, np.float64)
        cost = self.cost(t, roots, boxes)
        rows, cols = linear_sum_assignment(cost) if cost.size else (np.zeros(0, int), np.zeros(0, int))
        matched = {r: c for r, c in zip(rows, cols, strict=True) if cost[r, c] < _FORBIDDEN}
        taken = set(matched.values())
        live: list[Track] = []
        for i, tr in enumerate(self.tracks):
            if i in matched:
                self._observe(tr, t, matched[i], roots, boxes, joints)
                live.append(tr)
            elif tr.state != TENTATIVE:  # a tentative track missed once is dropped silently
                tr.state, tr.detection = COASTING, -1
                live.append(tr)
        for d in range(len(roots)):
            if d not in taken and np.isfinite(roots[d]).all():
                live.append(self._birth(t, d, roots, boxes, joints))
        for tr in live:
            if tr.detection < 0:
                tr.factor, tr.scale_sigma = 1.0, float("nan")
        self.tracks = live
        return live + ended

    def _scaled(self, tr: Track, t: float, d: int, roots: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, ...]:
        """Detection d's root and joints times the track's scale correction (body_scale.py)."""
        tr.factor, tr.scale_sigma = 1.0, float("nan")
        if self._scales is not None:
            if tr.body is None:
                tr.body = BodyScale(self.cfg.scale)
            scale, sigma, kind = self._scales[d]
            tr.factor, tr.scale_sigma = tr.body.observe(t, scale, sigma, int(kind))
        return roots[d] * tr.factor, joints[d] * tr.factor

    def _birth(self, t: float, d: int, roots: np.ndarray, boxes: np.ndarray, joints: np.ndarray) -> Track:
        n = self._new_number()
        tr = Track(
            f"{self.cfg.id_prefix}{n}",
            n,
            TENTATIVE,
            roots[d].copy(),
            np.full(3, np.nan),
            joints[d].copy(),
            boxes[d].copy(),
            t,
            detection=d,
            filter=OneEuroFilter(self.cfg.one_euro) if self.cfg.smoothing else None,
        )
        tr.root, tr.joints = self._scaled(tr, t, d, roots, joints)
        if tr.filter is not None:
            tr.joints = tr.filter(tr.joints, t)
        if self.cfg.confirm_hits <= 1:
            tr.state = CONFIRMED
        return tr

    def _observe(self, tr: Track, t: float, d: int, roots: np.ndarray, boxes: np.ndarray, joints: np.ndarray) -> None:
        dt = t - tr.last_seen
        root, seen = self._scaled(tr, t, d, roots, joints)
        if np.isfinite(root).all():
            last = tr.observed_root if tr.observed_root is not None else tr.root
            if dt > 0 and np.isfinite(last).all():
                v = (root - last) / dt
                a = 1.0 - np.exp(-dt / self.cfg.velocity_smoothing)
                tr.velocity = v if not np.isfinite(tr.velocity).all() else tr.velocity + a * (v - tr.velocity)
            tr.root, tr.observed_root = root.copy(), root.copy()
        tr.joints = tr.filter(seen, t) if tr.filter is not None else seen
        if tr.filter is not None and np.isfinite(tr.joints[0]).all():
            tr.root = tr.joints[0].copy()  # keep root = smoothed pelvis
        if np.isfinite(boxes[d]).all():
            tr.box = boxes[d].copy()
        tr.hits += 1
        tr.last_seen, tr.detection = t, d
        if tr.state == TENTATIVE and tr.hits < self.cfg.confirm_hits:
            return
        tr.state = CONFIRMED
