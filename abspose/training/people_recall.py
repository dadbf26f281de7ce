"""Score people found against hand-labelled person boxes (``test/fixtures/person_boxes.json``).

A found person is its skeleton's keypoint box (landmarks seen with visibility ≥ 0.5, clipped to the image).
Detections and labelled people (visible and partial) are matched one to one (Hungarian, on IoU) where
IoU ≥ `MATCH_IOU`, or where the keypoint box lies at least `INSIDE` within the labelled box and spans at
least `MIN_SPAN` of its height (a skeleton of part of that person: legs the model did not see); a partial
label (its visible part only) also where the keypoint box covers at least `COVERS` of it with IoU ≥
`PARTIAL_IOU` (the skeleton includes the hidden limbs the model draws).
Recall counts the 'visible' labels matched; precision counts scored detections that match any label;
a detection on a labelled object (a robot) or on nobody is a false positive. The rule for labels is in
the fixture itself.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from abspose.person_detector import box_intersection, box_iou

MATCH_IOU = 0.5
INSIDE = 0.85
MIN_SPAN = 0.4
COVERS = 0.6
PARTIAL_IOU = 0.25
FIXTURE = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "person_boxes.json"


@dataclass
class Labels:
    """One labelled image: boxes [K,4] x0, y0, x1, y1 pixels."""

    key: str
    path: str  # under the shared data folder
    frame: int | None
    visible: np.ndarray
    partial: np.ndarray
    objects: np.ndarray
    min_height: float = 0.0  # detections smaller than this are not scored


@dataclass
class Score:
    found: int = 0  # visible labels matched
    visible: int = 0
    detections: int = 0  # scored detections
    correct: int = 0  # scored detections matching a label
    on_objects: int = 0  # detections on a labelled object
    missed: dict[str, list[int]] = field(default_factory=dict)  # image -> indices of unmatched visible labels
    false: dict[str, list[int]] = field(default_factory=dict)  # image -> indices of unmatched detections

    @property
    def recall(self) -> float:
        return self.found / max(self.visible, 1)

    @property
    def precision(self) -> float:
        return self.correct / max(self.detections, 1)

    def add(self, other: Score) -> None:
        for k in ("found", "visible", "detections", "correct", "on_objects"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.missed.update(other.missed)
        self.false.update(other.false)


def load_labels(path: str | Path = FIXTURE) -> list[Labels]:
    """The labelled images of the fixture, in its order."""
    doc = json.loads(Path(path).read_text())

    def boxes(v: list) -> np.ndarray:
        return np.asarray(v, np.float64).reshape(-1, 4)

    return [
        Labels(
            key,
            item["path"],
            item.get("frame"),
            boxes(item["visible"]),
            boxes(item["partial"]),
            boxes(item["objects"]),
            float(item.get("min_height", 0.0)),
        )
        for key, item in doc["images"].items()
    ]


def read_labelled_image(labels: Labels, data: Path) -> np.ndarray:
    """The labelled image as HxWx3 uint8 RGB (a video frame for labels with ``frame``)."""
    import cv2

    if labels.frame is None:
        bgr = cv2.imread(str(data / labels.path))
    else:
        cap = cv2.VideoCapture(str(data / labels.path))
        for _ in range(labels.frame + 1):
            ok, bgr = cap.read()
            if not ok:
                bgr = None
                break
        cap.release()
    if bgr is None:
        raise OSError(f"{data / labels.path}: cannot read image/frame {labels.frame}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def mosaic(images: list[tuple[Labels, np.ndarray]], n: int) -> tuple[np.ndarray, Labels]:
    """An n x n grid of labelled images of one size (cycled when fewer than n²), with their labels moved
    along: the same real people at their own pixel size in an n times larger frame (a large-frame test)."""
    first, (h, w) = images[0][0], images[0][1].shape[:2]
    grid = np.zeros((n * h, n * w, 3), np.uint8)
    moved: dict[str, list[np.ndarray]] = {"visible": [], "partial": [], "objects": []}
    for k in range(n * n):
        labels, part = images[k % len(images)]
        r, c = divmod(k, n)
        offset = np.array([c * w, r * h] * 2, np.float64)
        if part.shape[:2] != (h, w):
            raise ValueError(f"{labels.key}: {part.shape[:2]} is not the size of {first.key}, {(h, w)}")
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = part
        for name, boxes in moved.items():
            boxes.append(getattr(labels, name) + offset)
    joined = {name: np.concatenate(boxes) for name, boxes in moved.items()}
    return grid, dataclasses.replace(first, key=f"{first.key}_mosaic{n}", **joined)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] IoU of boxes a [N,4] and b [M,4]."""
    return box_iou(torch.from_numpy(a)[:, None], torch.from_numpy(b)[None]).numpy()


def score_image(labels: Labels, found: np.ndarray, size: tuple[int, int]) -> Score:
    """Score the keypoint boxes ``found`` [N,4] of one image of ``size`` (h, w) against its labels; boxes are
    clipped to the image first (landmarks predicted outside it are not part of what is seen)."""
    h, w = size
    found = np.clip(np.asarray(found, np.float64).reshape(-1, 4), 0, [w, h, w, h])
    people = np.concatenate([labels.visible, labels.partial])
    overlap = iou(found, people) if len(found) and len(people) else np.zeros((len(found), len(people)))
    if overlap.size:
        inter = box_intersection(torch.from_numpy(found)[:, None], torch.from_numpy(people)[None]).numpy()
        area = np.clip(found[:, 2:] - found[:, :2], 1e-9, None).prod(-1)
        span = (found[:, None, 3] - found[:, None, 1]) / np.maximum(people[None, :, 3] - people[None, :, 1], 1e-9)
        part = (inter / area[:, None] >= INSIDE) & (span >= MIN_SPAN)
        hidden = np.arange(len(people)) >= len(labels.visible)
        label_area = np.clip(people[:, 2:] - people[:, :2], 1e-9, None).prod(-1)
        part |= hidden[None] & (inter / label_area[None] >= COVERS) & (overlap >= PARTIAL_IOU)
        overlap = np.where((overlap >= MATCH_IOU) | part, overlap, -1.0)
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else (np.zeros(0, int), np.zeros(0, int))
    good = overlap[rows, cols] >= 0
    rows, cols = rows[good], cols[good]
    matched_det = np.zeros(len(found), bool)
    matched_det[rows] = True
    found_visible = set(cols[cols < len(labels.visible)].tolist())
    height = found[:, 3] - found[:, 1] if len(found) else np.zeros(0)
    scored = matched_det | (height >= labels.min_height)
    on_obj = np.zeros(len(found), bool)
    if len(labels.objects) and len(found):
        on_obj = (iou(found, labels.objects) >= MATCH_IOU).any(1) & ~matched_det
    s = Score(
        found=len(found_visible),
        visible=len(labels.visible),
        detections=int(scored.sum()),
        correct=int((matched_det & scored).sum()),
        on_objects=int(on_obj.sum()),
    )
    s.missed[labels.key] = [i for i in range(len(labels.visible)) if i not in found_visible]
    s.false[labels.key] = np.flatnonzero(scored & ~matched_det).tolist()
    return s
