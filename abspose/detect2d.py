"""Multi-person 2D keypoints: BlazePose (detector + full landmark model) in torch, batched over people.

Top-down, as mediapipe does it: letterbox the image to 224², run the person detector, decode anchors,
weighted NMS, one rotated square ROI per person (centre = mid-hip, size and angle from the detector's
alignment keypoints), crop all ROIs to 256² (OpenCV's warp on a CPU, as mediapipe; one batched torch warp
on other devices), run the landmark model on the batch, refine with the heatmap, map back to image pixels.
Optional tracking mode: ROIs from the previous frame's landmarks (points 33/34) replace the detector, which
then runs only every ``detect_every`` frames.

Units: pixels of the input image (x right, y down; raw/distorted coordinates, undistortion comes later),
pixel centres at integer coordinates + 0.5 as in mediapipe's normalized coordinates × size.
Geometry constants follow mediapipe 0.10.21's graphs (``../shared/notes/blazepose.md``).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from abspose import skeleton
from abspose.image import dark_crops, dark_levels, rgb8_of, stretch_levels, tensor_to_rgb8, to_rgb_tensor
from abspose.models.blazepose_weights import MASK_OUTPUT, load_graph
from abspose.person_detector import (
    INPUT_SIZE,
    DetectorOptions,
    PersonDetector,
    box_intersection,
    box_iou,
    greedy,
    in_chunks,
    nms,
    static_hw,
)
from abspose.precision import bf16_is_fast

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
LANDMARK_BATCH = 16  # crops per landmark-model call
MASK_SIZE = 128  # px: the person mask's side where it is computed (the model's own is 256: 6x the cost)
NUM_LANDMARKS = 33  # body landmarks; the model outputs 39 (33, 34: hip centre and scale point for ROIs)
# landmark pairs whose segments :func:`limb_coverage` samples: arms, legs, the torso's four sides
LIMB_LANDMARKS = ((11, 13), (13, 15), (12, 14), (14, 16), (23, 25), (25, 27), (24, 26), (26, 28), (11, 12), (23, 24),
                  (11, 23), (12, 24))  # fmt: skip


def _anchors() -> torch.Tensor:
    """[2254, 2] SSD anchor centres (normalized) of the pose detector: strides 8, 16, 32×3, 2 per cell."""
    out = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        n = DETECTOR_SIZE // stride
        y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        centres = torch.stack([(x + 0.5) / n, (y + 0.5) / n], dim=-1).reshape(-1, 1, 2)
        out.append(centres.expand(-1, per_cell, -1).reshape(-1, 2))
    return torch.cat(out).float()


@dataclass
class Options:
    """Thresholds and modes (defaults: mediapipe's)."""

    # person proposals: "nanodet" (NanoDet person boxes on the frame and on tiles, docs/detect2d.md) or
    # "blazepose" (BlazePose's own short-range detector: mediapipe's pipeline, for parity)
    detector: str = "nanodet"
    min_person_score: float = 0.3  # NanoDet person score
    tiles: int = 2  # NanoDet: square tiles along the frame's long side besides the whole frame (0: none)
    # ... run only where the whole frame shows an uncertain or a small person, or nobody sure (False: always)
    adaptive_tiles: bool = True
    # px: the largest tile; a frame whose short side is larger gets rows of smaller tiles (<= 0: no limit)
    tile_max: float = 960.0
    box_scale: float = 1.25  # landmark ROI side = box_scale x the box's long side, centred on the box
    # nanodet: BlazePose's own detector on each person box at least orient_aspect as wide as tall (a standing
    # person's box is narrower; a lying or fallen one's is not), on a square of orient_crop x its long side,
    # gives the body's rotation (hip centre -> head); a person it finds (score >= orient_score) turned more
    # than orient_angle degrees from upright gets that detection's rotated ROI, the others the box's upright
    # one (docs/detect2d.md: people lying or turned)
    orient: bool = True
    orient_aspect: float = 0.7
    orient_crop: float = 1.5
    orient_angle: float = 45.0
    orient_score: float = 0.8
    min_box_iou: float = 0.3  # a skeleton whose keypoint box overlaps its person box less is dropped, ...
    # ... unless its keypoint box lies >= 90 % inside that box grown by 10 % and spans at least this share of its
    # height: a thin person in profile (joint centres leave out the body's width, so the IoU is low)
    min_box_span: float = 0.8
    duplicate_iou: float = 0.5  # two skeletons whose keypoint boxes overlap more are one person
    duplicate_share: float = 0.4  # ... or when this share of their landmarks coincide
    # ... or when their heads coincide: nose, eyes, ears and mouth on average within this x the larger one's
    # torso length (shoulder to hip centre) of each other (a partial copy of a person keeps that person's head)
    duplicate_head: float = 0.15
    # a skeleton from a person box scored below ``enclosed_score`` whose keypoint box lies at least
    # ``enclosed_share`` inside other, surer people's keypoint boxes is made of their parts: dropped
    enclosed_score: float = 0.45
    enclosed_share: float = 0.9
    # a skeleton from a person box scored below ``enclosed_score`` whose head landmarks lie on average within
    # this x the larger torso length of those of a skeleton from a box scored at least that is a copy of that
    # person (closer than about a head's width: a second person's head would be beside it): dropped
    doubtful_head: float = 0.25
    # a skeleton from a person box scored below ``enclosed_score`` whose limbs lie on BlazePose's own person mask
    # (its segmentation head, computed for such crops only) less than this on average, weighted by the limbs'
    # visibility, is drawn over something that is not a person (a robot): dropped (<= 0: off, the head is not run)
    person_mask: float = 0.55
    # a frame whose bright end (99.5th percentile of grey levels) lies below this is stretched to the full
    # range before the detector and the landmark model see it (a dim room; a 10/12-bit mono16 camera): NanoDet
    # and BlazePose find few people in near-black frames (docs/detect2d.md: near-black frames; 0: off). One
    # whose 95th (or 75th) percentile lies below it and 99.5th 4 x above (lamps, windows or lit people on the rest)
    # gets a second, stretched look for NanoDet, and the people in its dark part are cropped from that
    dark_level: float = 32.0
    mask_margin: float = 0.2  # crops from a box are blanked outside it grown by this x its size (<0: off)
    mask_value: float = 0.0  # the blank (landmark input range 0..1)
    min_detection_score: float = 0.5  # BlazePose detector's score
    nms_iou: float = 0.3
    min_presence: float = 0.5  # landmark model's pose-presence flag
    max_people: int = 0  # 0 = no limit
    roi_scale: float = 1.25
    refine_min_confidence: float = 0.5
    # heatmap refinement window: 7 as mediapipe's Tasks PoseLandmarker (and the graph .pbtxt);
    # 9 as the legacy solutions.pose binary, which differs from its .pbtxt
    refine_kernel: int = 7
    tracking: bool = False  # reuse ROIs from the previous frame's landmarks
    detect_every: int = 10  # in tracking mode, run the detector every N frames (and when nobody is tracked)
    track_iou: float = 0.3  # a person box overlapping a tracked person's keypoint box this much is that person
    exact_crops: bool = True  # crops exactly as OpenCV's uint8 warp makes them (mediapipe parity)
    # on a CPU, crop with OpenCV itself when cv2 is installed: mediapipe's own CPU crop, 3x faster than the
    # torch warp (one call per person; CUDA and exact_crops=False always use the batched torch warp)
    opencv_crops: bool = True


@dataclass
class Poses2D:
    """People found in one image (N people). Pixels of the input image; confidences in [0, 1]."""

    landmarks: torch.Tensor  # [N, 33, 2] BlazePose landmarks, pixels
    depth: torch.Tensor  # [N, 33] BlazePose relative z (pixels, same scale as x; smaller = nearer)
    visibility: torch.Tensor  # [N, 33]
    presence: torch.Tensor  # [N, 33]
    world: torch.Tensor  # [N, 33, 3] BlazePose metric landmarks around the hips (m)
    keypoints: torch.Tensor  # [N, NUM_JOINTS, 2] the package's joint set, pixels (NaN: output-only joints)
    confidence: torch.Tensor  # [N, NUM_JOINTS]
    score: torch.Tensor  # [N] pose presence from the landmark model
    rois: torch.Tensor  # [N, 4] cx, cy, side (pixels), angle (rad) of each person's crop
    detected: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))  # [N] ROI from detector

    def __len__(self) -> int:
        return int(self.landmarks.shape[0])

    def cpu(self) -> Poses2D:
        return Poses2D(**{k: v.cpu() for k, v in self.__dict__.items()})


def crop_rois(image: torch.Tensor, rois: torch.Tensor, size: int, border: str, exact: bool = True) -> torch.Tensor:
    """Crop rotated squares: image [3,H,W] float 0..255, rois [N,4] (cx, cy, side px, angle rad) -> [N,3,size,size].

    Output pixel (u, v) samples the image at c + R(angle)·((u/size − ½)·side, (v/size − ½)·side) in OpenCV
    pixel coordinates, as mediapipe's ImageToTensor (OpenCV warp of the ROI's corners) does.
    border: "zeros" or "replicate". ``exact``: reproduce OpenCV's uint8 bilinear warp (corners
    in float32 as cv::boxPoints gives them, sample positions on a 1/32-px grid, integer weights
    (32−fx)(32−fy)·32, result (Σ w·p + 2¹⁴) >> 15): the models react to single grey levels, so this is what
    gives parity with mediapipe. Equal to cv2.warpPerspective but for ≈0.01 % of values, where a position
    lies on a 1/32-px rounding boundary. Otherwise plain float bilinear. The crops come channels-last, as
    the models take them.
    """
    n = rois.shape[0]
    _, h, w = image.shape
    dev = image.device
    r = rois.double()
    cos, sin = torch.cos(r[:, 3]), torch.sin(r[:, 3])
    half = r[:, 2] / 2
    # top-left corner and the two edge vectors of the rotated square (cv::RotatedRect::points)
    top_left = torch.stack([r[:, 0] - half * cos + half * sin, r[:, 1] - half * sin - half * cos], -1)
    edge_u = torch.stack([r[:, 2] * cos, r[:, 2] * sin], -1)
    edge_v = torch.stack([-r[:, 2] * sin, r[:, 2] * cos], -1)
    if exact:  # cv::boxPoints returns float32 corners
        top_left = top_left.float().double()
        edge_u = (top_left + edge_u).float().double() - top_left
        edge_v = (top_left + edge_v).float().double() - top_left
    t = torch.arange(size, device=dev, dtype=torch.float64) / size
    # sample positions (x, y) [N,size,size]: (top_left + edge_u·t_col) + edge_v·t_row, in that order
    along_u = top_left[:, None, None, :] + edge_u[:, None, None, :] * t[None, None, :, None]  # [N,1,S,2]
    xy = along_u + edge_v[:, None, None, :] * t[None, :, None, None]  # [N,S,S,2]
    xy = torch.nan_to_num(xy, nan=-(2.0**25)).clamp(-(2.0**25), 2.0**25)  # far outside, not undefined
    if exact:  # OpenCV's positions: the 1/32-px grid
        xy = torch.round(xy * 32) / 32
    grid = (2 * xy + 1) / torch.tensor([w, h], device=dev, dtype=torch.float64) - 1
    src = (image.double() if exact else image)[None].expand(n, -1, -1, -1)
    mode = border.replace("replicate", "border")
    crops = F.grid_sample(src, grid.to(src.dtype), mode="bilinear", padding_mode=mode, align_corners=False)
    if exact:
        # OpenCV's integer blend Σ W·p / 2¹⁵ (W = (32−fx)(32−fy)·32) is exactly the bilinear blend at those
        # positions, which float64 computes to within 1e-9, and its rounding (Σ W·p + 2¹⁴) >> 15 is
        # floor(blend + ½) (the blend is a multiple of 2⁻¹⁵, so the 1e-6 only settles ties)
        crops = torch.floor(crops + (0.5 + 1e-6)).to(image.dtype)
    return crops.contiguous(memory_format=torch.channels_last)


def crop_rois_opencv(image: np.ndarray, rois: torch.Tensor, size: int, border: str) -> torch.Tensor:
    """:func:`crop_rois` with OpenCV on a CPU, as mediapipe's ImageToTensor does it: image HxWx3 uint8 RGB,
    rois [N,4] (cx, cy, side px, angle rad) -> float [N,3,size,size] 0..255, channels-last."""
    import cv2

    out = np.zeros((len(rois), size, size, 3), np.uint8)
    dst = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    flag = cv2.BORDER_CONSTANT if border == "zeros" else cv2.BORDER_REPLICATE
    for crop, (cx, cy, side, angle) in zip(out, rois.tolist(), strict=True):
        if not (np.isfinite(angle) and 1e-3 < side < 2**24 and max(abs(cx), abs(cy)) < 2**24):
            continue  # a NaN, empty or absurd ROI: a black crop (the landmark model finds no pose in it)
        src = cv2.boxPoints(((cx, cy), (side, side), np.degrees(angle))).astype(np.float32)
        matrix = cv2.getPerspectiveTransform(src, dst)
        cv2.warpPerspective(image, matrix, (size, size), dst=crop, flags=cv2.INTER_LINEAR, borderMode=flag)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float()


def _rois_from_points(p0: torch.Tensor, p1: torch.Tensor, scale: float) -> torch.Tensor:
    """ROI [N,4] from alignment points (pixels): centre p0, side 2·|p1−p0|·scale, angle so p0→p1 is up."""
    d = p1 - p0
    side = 2.0 * d.norm(dim=-1) * scale
    angle = math.pi / 2 - torch.atan2(-d[:, 1], d[:, 0])
    angle = angle - 2 * math.pi * torch.floor((angle + math.pi) / (2 * math.pi))  # wrap to [-π, π)
    return torch.stack([p0[:, 0], p0[:, 1], side, angle], dim=-1)


def weighted_nms(boxes: torch.Tensor, points: torch.Tensor, scores: torch.Tensor, iou: float, max_out: int = 0):
    """mediapipe's weighted NMS: boxes [M,4] (xmin, ymin, xmax, ymax), points [M,K,2], scores [M].

    Greedy by score; each kept detection becomes the score-weighted mean of itself and all remaining
    boxes overlapping it by IoU > ``iou`` (its score stays the top one). Loops once per output person.
    """
    order = torch.argsort(scores, descending=True)
    boxes, points, scores = boxes[order], points[order], scores[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    alive = torch.ones(len(scores), dtype=torch.bool, device=scores.device)
    keep_boxes, keep_points, keep_scores = [], [], []
    for i in range(len(scores)):  # one iteration per surviving person, not per anchor
        if not alive[i]:
            continue
        lt = torch.maximum(boxes[i, :2], boxes[:, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=-1)
        overlap = inter / (area[i] + area - inter).clamp(min=1e-12)
        group = alive & (overlap > iou)
        group[i] = True
        wts = scores * group
        total = wts.sum()
        keep_boxes.append((boxes * wts[:, None]).sum(0) / total)
        keep_points.append((points * wts[:, None, None]).sum(0) / total)
        keep_scores.append(scores[i])
        alive &= ~group
        if max_out and len(keep_scores) >= max_out:
            break
    if not keep_scores:
        return boxes[:0], points[:0], scores[:0]
    return torch.stack(keep_boxes), torch.stack(keep_points), torch.stack(keep_scores)


def refine_with_heatmap(xy: torch.Tensor, heatmap: torch.Tensor, kernel: int, min_conf: float) -> torch.Tensor:
    """Heatmap refinement: xy [B,L,2] normalized to the crop, heatmap [B,L,64,64] logits -> refined xy.

    In a kernel×kernel window around (trunc(x·64), trunc(y·64)), replace x, y by the sigmoid-weighted mean
    column/row divided by 64, where the window's maximum is at least ``min_conf``.
    """
    b, n, hh, hw = heatmap.shape
    off = torch.arange(kernel, device=xy.device) - (kernel - 1) // 2
    col0 = torch.trunc(xy[..., 0] * hw).long()
    row0 = torch.trunc(xy[..., 1] * hh).long()
    inside = (col0 >= 0) & (col0 < hw) & (row0 >= 0) & (row0 < hh)
    cols = col0[..., None] + off  # [B,L,k]
    rows = row0[..., None] + off
    cmask = (cols >= 0) & (cols < hw)
    rmask = (rows >= 0) & (rows < hh)
    flat = heatmap.reshape(b, n, hh * hw)
    idx = rows.clamp(0, hh - 1)[..., :, None] * hw + cols.clamp(0, hw - 1)[..., None, :]  # [B,L,k,k]
    conf = torch.sigmoid(flat.gather(2, idx.reshape(b, n, -1)).reshape(b, n, kernel, kernel))
    conf = conf * (rmask[..., :, None] & cmask[..., None, :])
    total = conf.sum(dim=(-1, -2))
    ref_x = (conf * cols[..., None, :]).sum(dim=(-1, -2)) / total.clamp(min=1e-12) / hw
    ref_y = (conf * rows[..., :, None]).sum(dim=(-1, -2)) / total.clamp(min=1e-12) / hh
    ok = inside & (conf.amax(dim=(-1, -2)) >= min_conf) & (total > 0)
    return torch.where(ok[..., None], torch.stack([ref_x, ref_y], dim=-1), xy)


def _frozen(compiled: Callable[..., Any]) -> Callable[..., Any]:
    """A compiled model whose (re)compilations, which happen lazily at a call, freeze its weights as constants
    and use a C++ wrapper (inductor options that ``torch.compile(options=...)`` does not pass on here)."""
    import torch._inductor.config as inductor_config

    def run(*args: torch.Tensor) -> Any:
        with inductor_config.patch(freezing=True, cpp_wrapper=True):
            return compiled(*args)

    return run


class BlazePose:
    """Multi-person BlazePose on any torch device. ``__call__(image, encoding)`` -> :class:`Poses2D`."""

    def __init__(
        self,
        device: str | torch.device | None = None,
        half: bool = False,
        options: Options | None = None,
        compile: bool = False,
        bf16: bool = False,
    ):
        """half: fp16 models on CUDA. bf16: NanoDet in bfloat16 on a CPU that computes it natively (AVX-512 BF16
        or AMX: 2x faster there; people found as in fp32 within the spread that a ±1 grey-level change of the
        image gives: docs/detect2d.md), fp32 on other CPUs; the landmark model stays fp32 (mediapipe parity).
        compile: torch.compile the two models now (faster frames on a CPU, about a minute at start-up: for long-running
        nodes and benchmarks, not for a few images). If compiling fails (e.g. no C++ compiler), the models run
        eagerly and ``compile_error`` says why."""
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.options = options or Options()
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        if self.options.detector not in ("nanodet", "blazepose"):
            raise ValueError(f"detector must be 'nanodet' or 'blazepose', not {self.options.detector!r}")
        self.people: PersonDetector | None = None
        self.detector: Any = None
        if self.options.detector == "nanodet":
            opts = DetectorOptions(
                min_score=self.options.min_person_score,
                tiles=self.options.tiles,
                adaptive_tiles=self.options.adaptive_tiles,
                tile_max=self.options.tile_max,
            )
            native = bf16 and self.device.type == "cpu" and bf16_is_fast(self.device)
            self.people = PersonDetector(self.device, torch.bfloat16 if native else self.dtype, opts)
        if self.people is None or self.options.orient:
            self.detector = load_graph("detector", device=self.device).to(self.dtype)
        # landmarks, pose flag, heatmap, world landmarks (the segmentation head is not computed) ...
        landmark = load_graph("landmark", outputs=[0, 1, 3, 4], device=self.device)
        self.landmark = landmark.to(self.dtype)
        # ... and the whole graph, with the person mask at MASK_SIZE², for the crops of doubtful person boxes
        # (Options.person_mask)
        check = self.options.person_mask > 0 and self.people is not None
        segmenter = load_graph("landmark", device=self.device, mask_size=MASK_SIZE) if check else None
        self.segmenter = segmenter.share_parameters(self.landmark).to(self.dtype) if segmenter is not None else None
        self.compiled = False
        self.compile_error: str | None = None
        if compile:
            self._compile()
        self.anchors = _anchors().to(self.device)
        opencv = self.device.type == "cpu" and self.options.exact_crops and self.options.opencv_crops
        self.opencv_crops = opencv and importlib.util.find_spec("cv2") is not None
        self._prev_rois: torch.Tensor | None = None
        self._prev_boxes: torch.Tensor | None = None  # [T,4] keypoint boxes of the tracked people
        self._frame = 0
        # how the last frame was seen: "as is", "stretched" (near-black) or "two looks" (dark with lights)
        self.exposure = "as is"

    def _compile(self) -> None:
        """Compile the models on dummy inputs: BlazePose's detector at its one shape; the landmark model and
        NanoDet for one and for two inputs, so the batch (crops, views) is symbolic (dynamic=True would make H
        and W symbolic too, which inductor cannot lower for channels-last convolutions) and no frame waits for
        a compilation. On a CPU inductor freezes the weights into the graphs (prepacked oneDNN convolutions)
        and writes a C++ wrapper: on a 2-core CPU the landmark model runs ~1.3x faster than plain
        torch.compile at one crop, NanoDet ~1.2-1.35x faster than eager (docs/detect2d.md)."""
        # every instance adds graphs to dynamo's cache of the one graph-module forward; past its limit (8) a
        # further instance (another camera, a benchmark's second pipeline) would silently run eagerly
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        # BlazePose's detector in mediapipe's pipeline; beside NanoDet it only orients wide boxes, now and then, and
        # stays eager (compiling it for a varying batch took 58 s more at start-up on a 2-core CPU)
        detector = torch.compile(self.detector, dynamic=False) if self.people is None else None
        people = torch.compile(self.people.model, dynamic=None) if self.people is not None else None
        landmark = torch.compile(self.landmark, dynamic=None)
        if self.device.type == "cpu":  # measured on CPUs only; other devices keep inductor's defaults
            detector, landmark = _frozen(detector) if detector is not None else None, _frozen(landmark)
            people = _frozen(people) if people is not None else None
        try:
            with torch.inference_mode():
                if detector is not None:
                    detector(self._static_hw(torch.zeros(1, 3, DETECTOR_SIZE, DETECTOR_SIZE, device=self.device)))
                for n in (1, 2):
                    landmark(self._static_hw(torch.zeros(n, 3, LANDMARK_SIZE, LANDMARK_SIZE, device=self.device)))
                    if people is not None:
                        people(
                            static_hw(
                                torch.zeros(n, 3, INPUT_SIZE, INPUT_SIZE, device=self.device, dtype=self.people.dtype)
                            )
                        )
        except Exception as exc:  # no compiler, unsupported device, an inductor bug: eager still works
            self.compile_error = f"torch.compile failed, running eagerly: {type(exc).__name__}: {exc}"
            return
        self.detector = detector if detector is not None else self.detector
        self.landmark, self.compiled = landmark, True
        if self.people is not None:
            self.people.model = people

    def _static_hw(self, crops: torch.Tensor) -> torch.Tensor:
        """Model input in the models' dtype and memory order (channels-last, as the warm-up compiled them: any
        other layout would recompile at the first frame); when compiled, only the batch size may vary (the
        detector shares the graph code, so automatic dynamic shapes would otherwise make H and W symbolic)."""
        return static_hw(crops.to(self.dtype).contiguous(memory_format=torch.channels_last))

    def _crop(
        self, image: torch.Tensor, rois: torch.Tensor, size: int, border: str, rgb8: np.ndarray | None
    ) -> torch.Tensor:
        """Crops [N,3,size,size] 0..255 of image [3,H,W] 0..255 by OpenCV (from ``rgb8``, the same frame as
        HxWx3 uint8, when given) or the batched torch warp."""
        if self.opencv_crops:
            return crop_rois_opencv(tensor_to_rgb8(image) if rgb8 is None else rgb8, rois, size, border)
        return crop_rois(image, rois, size, border, self.options.exact_crops)

    def reset(self) -> None:
        """Forget tracked ROIs (call between unrelated images in tracking mode)."""
        self._prev_rois = None
        self._prev_boxes = None
        self._frame = 0

    @torch.inference_mode()
    def person_boxes(self, image: torch.Tensor, rgb8: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """NanoDet person boxes on image [3,H,W] (0..255): (boxes [P,4] x0, y0, x1, y1 pixels, scores [P])."""
        if self.people is None:
            raise ValueError("person_boxes needs detector='nanodet'")
        _, h, w = image.shape
        boxes, scores = self.people.detect(lambda rois: self._crop(image, rois, INPUT_SIZE, "zeros", rgb8), h, w)
        if self.options.max_people:
            boxes, scores = boxes[: self.options.max_people], scores[: self.options.max_people]
        return boxes, scores

    def _looked_twice(
        self, image: torch.Tensor, rgb8: np.ndarray | None, lit: torch.Tensor, lit8: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Person boxes [P,4] and scores [P] of a dark frame with lights (image [3,H,W] 0..255, ``rgb8`` its uint8
        frame or None) and of the same frame stretched (``lit``, ``lit8``): each box from the look that suits its
        region — the stretched one where the frame is dark there (:func:`dark_crops` of the box), the frame as it
        is where it is lit — then NMS over both, best score first."""
        boxes, scores = self.person_boxes(image, rgb8)
        more, more_scores = self.person_boxes(lit, lit8)
        both = torch.cat([boxes, more])
        rois = self.rois_from_boxes(both)
        size = 128  # enough pixels to tell a dark box from a lit one
        dark = dark_crops(
            self._crop(image, rois, size, "zeros", rgb8), self.options.dark_level, _inside(rois, both, 0.0, size)
        )
        take = torch.cat([~dark[: len(boxes)], dark[len(boxes) :]])
        both, scores = both[take], torch.cat([scores, more_scores])[take]
        keep = nms(both, scores, self.people.options.nms_iou)
        if self.options.max_people:
            keep = keep[: self.options.max_people]
        return both[keep], scores[keep]

    def rois_from_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Upright landmark ROIs [P,4] (cx, cy, side, 0) around person boxes [P,4]."""
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = (boxes[:, 2:] - boxes[:, :2]).amax(-1) * self.options.box_scale
        return torch.cat([centre, side[:, None], torch.zeros_like(side)[:, None]], -1)

    def _pose_detections(
        self, image: torch.Tensor, squares: torch.Tensor, rgb8: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """BlazePose's detector on the upright squares [N,4] of image [3,H,W] (0..255), LANDMARK_BATCH at a
        time: raw boxes and keypoints [N,2254,12] (fractions of the square, from each anchor) and scores
        [N,2254]."""
        crops = self._crop(image, squares, DETECTOR_SIZE, "zeros", rgb8) / 127.5 - 1.0
        raw, score = in_chunks(lambda chunk: self.detector(self._static_hw(chunk)), crops, LANDMARK_BATCH)
        return raw.float() / DETECTOR_SIZE, torch.sigmoid(score[..., 0].float().clamp(-100, 100))

    @torch.inference_mode()
    def oriented_rois(self, image: torch.Tensor, boxes: torch.Tensor, rgb8: np.ndarray | None = None) -> torch.Tensor:
        """Landmark ROIs [P,4] (cx, cy, side, angle) for person boxes [P,4] in image [3,H,W] (0..255): the box's
        upright ROI, or, for a box at least ``orient_aspect`` as wide as tall where BlazePose's detector finds
        the body turned more than ``orient_angle`` from upright, that detection's ROI (mediapipe's: hip
        centre, rotation to the head)."""
        rois = self.rois_from_boxes(boxes)
        size = boxes[:, 2:] - boxes[:, :2]
        wide = torch.nonzero(size[:, 0] >= self.options.orient_aspect * size[:, 1])[:, 0]
        if not self.options.orient or self.detector is None or len(wide) == 0:
            return rois
        centre, side = rois[wide, :2], size[wide].amax(-1) * self.options.orient_crop
        squares = torch.cat([centre, side[:, None], torch.zeros_like(side)[:, None]], -1)
        raw, score = self._pose_detections(image, squares, rgb8)
        best = score.argmax(-1)  # each box's surest detection: the person the box is around
        row = torch.arange(len(wide), device=self.device)
        points = raw[row, best, 4:8].reshape(-1, 2, 2) + self.anchors[best][:, None]  # normalized in the square
        points = (points - 0.5) * side[:, None, None] + centre[:, None]
        turned = _rois_from_points(points[:, 0], points[:, 1], self.options.roi_scale)
        use = score[row, best] >= self.options.orient_score
        use &= turned[:, 3].abs() > math.radians(self.options.orient_angle)
        rois[wide[use]] = turned[use]
        return rois

    @torch.inference_mode()
    def detect_people(self, image: torch.Tensor, rgb8: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Person proposals on image [3,H,W] (0..255): (rois [P,4] pixels, scores [P]). ``rgb8``: the same
        frame as HxWx3 uint8, if the caller has it (spares the OpenCV crop a conversion)."""
        if self.people is not None:
            boxes, scores = self.person_boxes(image, rgb8)
            return self.oriented_rois(image, boxes, rgb8), scores
        _, h, w = image.shape
        side = float(max(h, w))
        letterbox = torch.tensor([[w / 2, h / 2, side, 0.0]], device=self.device)
        raw, scores = (t[0] for t in self._pose_detections(image, letterbox, rgb8))
        keep = scores >= self.options.min_detection_score
        anchors = self.anchors[keep]
        raw = raw[keep]
        centre = raw[:, :2] + anchors
        half = raw[:, 2:4] / 2
        boxes = torch.cat([centre - half, centre + half], dim=-1)
        points = raw[:, 4:12].reshape(-1, 4, 2) + anchors[:, None, :]
        boxes, points, scores = weighted_nms(boxes, points, scores[keep], self.options.nms_iou, self.options.max_people)
        # letterbox square (normalized) -> image pixels
        offset = torch.tensor([w / 2 - side / 2, h / 2 - side / 2], device=self.device)
        points = points * side + offset
        rois = _rois_from_points(points[:, 0], points[:, 1], self.options.roi_scale)
        return rois, scores

    def _landmark_model(
        self, crops: torch.Tensor, segment: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """The landmark model's raw outputs (raw, flag, heatmap, world) for crops [N,3,256,256] (0..1), in chunks
        of LANDMARK_BATCH crops (a crowd of a large frame's people in bounded memory); the rows of ``segment``
        [N] bool go through the whole graph, which also gives their person masks [S,1,MASK_SIZE,MASK_SIZE] (logits)."""

        def run(model: Any, x: torch.Tensor) -> list[torch.Tensor]:
            return [t.float() for t in in_chunks(lambda chunk: model(self._static_hw(chunk)), x, LANDMARK_BATCH)]

        if segment is None or self.segmenter is None or not bool(segment.any()):
            return run(self.landmark, crops), None
        whole = run(self.segmenter, crops[segment])  # raw, flag, mask, heatmap, world
        mask = whole.pop(MASK_OUTPUT)
        outs = [t.new_empty(len(crops), *t.shape[1:]) for t in whole]
        for out, part in zip(outs, whole, strict=True):
            out[segment] = part
        if not bool(segment.all()):
            for out, part in zip(outs, run(self.landmark, crops[~segment]), strict=True):
                out[~segment] = part
        return outs, mask

    @torch.inference_mode()
    def landmarks(
        self,
        image: torch.Tensor,
        rois: torch.Tensor,
        rgb8: np.ndarray | None = None,
        boxes: torch.Tensor | None = None,
        segment: torch.Tensor | None = None,
        lit: tuple[torch.Tensor, np.ndarray | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Landmark model on all ROIs at once: image [3,H,W] (0..255), rois [N,4] -> landmarks in pixels.
        ``rgb8`` as in :meth:`detect_people`. ``boxes`` [N,4]: each upright ROI's person box (NaN: none);
        the crop is blanked outside it (plus a margin), so the model sees that person, not a neighbour.
        ``segment`` [N] bool: rows whose ``on_person`` (:func:`limb_coverage` of the model's person mask) is
        computed (NaN for the others; needs ``Options.person_mask`` > 0). ``lit``: a dark frame with lights
        stretched (its [3,H,W] tensor and uint8 frame or None, :func:`stretch_levels`): the people whose crops
        are dark themselves (:func:`dark_crops`) are cropped from it."""
        crops = self._crop(image, rois, LANDMARK_SIZE, "replicate", rgb8)
        if lit is not None:
            nan = torch.full((len(rois), 4), float("nan"), device=rois.device)
            dark = dark_crops(
                crops, self.options.dark_level, _inside(rois, nan if boxes is None else boxes, 0.0, LANDMARK_SIZE)
            )
            if bool(dark.any()):
                crops[dark] = self._crop(lit[0], rois[dark], LANDMARK_SIZE, "replicate", lit[1]).to(crops.dtype)
        crops = crops / 255.0
        if boxes is not None and self.options.mask_margin >= 0:
            crops = _mask_outside(crops, rois, boxes, self.options.mask_margin, self.options.mask_value)
        (raw, flag, heatmap, world), mask = self._landmark_model(crops, segment)
        raw = raw.reshape(-1, 39, 5)
        xy = refine_with_heatmap(
            raw[..., :2] / LANDMARK_SIZE, heatmap, self.options.refine_kernel, self.options.refine_min_confidence
        )
        visibility = torch.sigmoid(raw[..., 3])
        on_person = xy.new_full((len(xy),), float("nan"))
        if mask is not None and segment is not None:
            on_person[segment] = limb_coverage(torch.sigmoid(mask), xy[segment], visibility[segment])
        cos, sin = torch.cos(rois[:, 3])[:, None], torch.sin(rois[:, 3])[:, None]
        u, v = xy[..., 0] - 0.5, xy[..., 1] - 0.5
        side = rois[:, 2, None]
        px = torch.stack(
            [(cos * u - sin * v) * side + rois[:, 0, None], (sin * u + cos * v) * side + rois[:, 1, None]], -1
        )
        return {
            "points": px,  # [N,39,2]
            "z": raw[..., 2] / LANDMARK_SIZE * side,
            "visibility": visibility,
            "presence": torch.sigmoid(raw[..., 4]),
            "flag": flag[:, 0],
            "world": world.reshape(-1, 39, 3)[:, :NUM_LANDMARKS],
            "on_person": on_person,  # [N] in 0..1, NaN where not computed
        }

    @torch.inference_mode()
    def __call__(self, image: np.ndarray | torch.Tensor, encoding: str | None = None) -> Poses2D:
        opts = self.options
        rgb8 = rgb8_of(image, encoding) if self.opencv_crops else None
        if rgb8 is not None:
            # every crop comes from the uint8 frame: no float copy of it (1.4 ms a frame at 1.3 MP, 14 ms at
            # 5 MP on a 2-core CPU); the [3,H,W] uint8 view stands for the frame where only its size is read
            rgb = torch.from_numpy(rgb8).permute(2, 0, 1)
        else:
            rgb = to_rgb_tensor(image, encoding, self.device)
        # a dark frame is stretched to the full range for the detector and the landmark model alike; one with
        # lights in it (lamps, windows, lit people) is looked at twice, as it is and stretched, and the crops of
        # people in its dark part are stretched
        levels = dark_levels(rgb, opts.dark_level) if opts.dark_level > 0 else None
        lit_rgb, lit_rgb8 = None, None
        self.exposure = "as is" if levels is None else "two looks" if levels[2] else "stretched"
        if levels is not None and levels[2]:
            lit_rgb, lit_rgb8 = stretch_levels(rgb, rgb8, *levels[:2])
        elif levels is not None:
            rgb, rgb8 = stretch_levels(rgb, rgb8, *levels[:2])
        if self.opencv_crops and rgb8 is None:  # one uint8 copy per frame for the detector's and landmark crops
            rgb8 = tensor_to_rgb8(rgb)
        tracked = opts.tracking and self._prev_rois is not None and len(self._prev_rois) > 0
        run_detector = not tracked or (opts.detect_every > 0 and self._frame % opts.detect_every == 0)
        rois = self._prev_rois if tracked else torch.zeros(0, 4, device=self.device)
        detected = torch.zeros(len(rois), dtype=torch.bool, device=self.device)
        boxed = detected.clone()  # rows whose box is the person detector's, this frame (the plausibility gate)
        # the person box behind each ROI, which its crop is masked to (NaN: none): a tracked person's is its
        # keypoint box in the previous frame, so that the landmark model stays on that person in a crowd
        # (with BlazePose's own detector, none: mediapipe's VIDEO mode, for parity)
        boxes = torch.full((len(rois), 4), float("nan"), device=self.device)
        if tracked and self.people is not None:
            boxes = self._prev_boxes
        # the detector's confidence in each row's person (a tracked person not matched to a new box: 1)
        box_score = torch.ones(len(rois), device=self.device)
        if run_detector:
            if self.people is not None:
                if lit_rgb is None:
                    new_boxes, new_scores = self.person_boxes(rgb, rgb8)
                else:
                    new_boxes, new_scores = self._looked_twice(rgb, rgb8, lit_rgb, lit_rgb8)
                new_rois = self.oriented_rois(rgb, new_boxes, rgb8)
                match = _match_boxes(boxes, new_boxes, opts.track_iou)  # a tracked person takes its new box
                boxes = torch.where((match >= 0)[:, None], new_boxes[match.clamp(min=0)], boxes)
                boxed = match >= 0
                box_score = torch.where(boxed, new_scores[match.clamp(min=0)], box_score)
                fresh = torch.ones(len(new_boxes), dtype=torch.bool, device=self.device)
                fresh[match[match >= 0]] = False
            else:
                new_rois, _ = self.detect_people(rgb, rgb8)
                new_boxes = torch.full((len(new_rois), 4), float("nan"), device=self.device)
                new_scores = torch.ones(len(new_rois), device=self.device)
                fresh = _untracked(new_rois, rois)
            rois = torch.cat([rois, new_rois[fresh]])
            boxes = torch.cat([boxes, new_boxes[fresh]])
            box_score = torch.cat([box_score, new_scores[fresh]])
            boxed = torch.cat([boxed, ~torch.isnan(new_boxes[fresh, 0])])
            detected = torch.cat([detected, torch.ones(int(fresh.sum()), dtype=torch.bool, device=self.device)])
        self._frame += 1
        if len(rois) == 0:
            self._prev_rois = None
            return _empty(self.device)
        doubtful = boxed & (box_score < opts.enclosed_score)  # these rows' limbs are checked against the person mask
        out = self.landmarks(rgb, rois, rgb8, boxes, doubtful, None if lit_rgb is None else (lit_rgb, lit_rgb8))
        keep = out["flag"] >= opts.min_presence
        kp_box = _keypoint_boxes(out["points"][:, :NUM_LANDMARKS], out["visibility"][:, :NUM_LANDMARKS])
        keep &= ~boxed | _on_box(kp_box, boxes, opts.min_box_iou, opts.min_box_span)  # row by row
        keep &= ~(out["on_person"] < opts.person_mask)  # NaN (not checked) keeps
        lm = out["points"][:, :NUM_LANDMARKS]
        keep &= _unique(kp_box, lm, out["flag"], keep, opts.duplicate_iou, opts.duplicate_share, opts.duplicate_head)
        keep &= ~_enclosed(kp_box, box_score, keep, opts.enclosed_score, opts.enclosed_share)
        keep &= ~_head_copies(lm, box_score, keep, opts.enclosed_score, opts.doubtful_head)
        out = {k: v[keep] for k, v in out.items()}
        rois, detected = rois[keep], detected[keep]
        lm = out["points"][:, :NUM_LANDMARKS]
        vis = out["visibility"][:, :NUM_LANDMARKS]
        if opts.tracking:  # next frame's ROIs, and the box of all landmarks (seen or not) to mask them to,
            # grown by 10 % of its size on each side to stand for a person box (measured on the labelled
            # images held for 11 frames: 483/540 people on the tracked frames; 452 ungrown, 465 at 25 %)
            self._prev_rois = _rois_from_points(out["points"][:, 33], out["points"][:, 34], opts.roi_scale)
            self._prev_boxes = _grown(_keypoint_boxes(lm, vis, min_vis=0.0), 0.1)
        keypoints, confidence = skeleton.from_blazepose(lm, vis)
        return Poses2D(
            landmarks=lm,
            depth=out["z"][:, :NUM_LANDMARKS],
            visibility=vis,
            presence=out["presence"][:, :NUM_LANDMARKS],
            world=out["world"],
            keypoints=keypoints,
            confidence=confidence,
            score=out["flag"],
            rois=rois,
            detected=detected,
        )


def limb_coverage(mask: torch.Tensor, xy: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """[N] mean of person masks [N,1,S,S] (0..1) over 9 points along each LIMB_LANDMARKS segment of landmarks xy
    [N,39,2] (fractions of the crop), each segment weighted by the lower visibility [N,39] of its two ends (a limb
    hidden behind a chair is not expected on the person's pixels)."""
    a = torch.tensor([i for i, _ in LIMB_LANDMARKS], device=xy.device)
    b = torch.tensor([j for _, j in LIMB_LANDMARKS], device=xy.device)
    t = torch.linspace(0, 1, 9, device=xy.device)[None, None, :, None]
    points = xy[:, a, None] * (1 - t) + xy[:, b, None] * t  # [N,L,9,2]
    grid = (points * 2 - 1).reshape(len(xy), -1, 1, 2)
    on = F.grid_sample(mask, grid, align_corners=False).reshape(len(xy), len(a), -1).mean(-1)  # [N,L]
    weight = torch.minimum(visibility[:, a], visibility[:, b])
    return (on * weight).sum(-1) / weight.sum(-1).clamp(min=1e-6)


def _inside(rois: torch.Tensor, boxes: torch.Tensor, margin: float, size: int) -> torch.Tensor:
    """[N,S,S] bool: the pixels of crops [N,3,S,S] of ROIs [N,4] (cx, cy, side, angle) whose image position lies
    inside box [N,4] grown by ``margin`` x its size on each side (every pixel where the box is NaN)."""
    grown = _grown(boxes, margin)
    lo, hi = grown[:, :2], grown[:, 2:]
    t = (torch.arange(size, device=rois.device, dtype=torch.float32) + 0.5) / size - 0.5
    cos, sin = torch.cos(rois[:, 3])[:, None, None], torch.sin(rois[:, 3])[:, None, None]
    u, v = t[None, None, :] * rois[:, 2, None, None], t[None, :, None] * rois[:, 2, None, None]  # [N,1,S], [N,S,1]
    x = rois[:, 0, None, None] + cos * u - sin * v  # [N,S,S] image position of crop pixel (row v, column u)
    y = rois[:, 1, None, None] + sin * u + cos * v
    inside = (x >= lo[:, 0, None, None]) & (x <= hi[:, 0, None, None])
    inside &= (y >= lo[:, 1, None, None]) & (y <= hi[:, 1, None, None])
    return inside | torch.isnan(boxes[:, :1, None])


def _mask_outside(crops: torch.Tensor, rois: torch.Tensor, boxes: torch.Tensor, margin: float, value: float):
    """Crops [N,3,S,S] of ROIs [N,4] (cx, cy, side, angle) with pixels whose image position lies outside box
    [N,4] (grown by ``margin`` x its size on each side) set to ``value``; rows whose box is NaN are left."""
    inside = _inside(rois, boxes, margin, crops.shape[-1])
    return torch.where(inside[:, None], crops, torch.full_like(crops[:1, :, :1, :1], value))


def _grown(boxes: torch.Tensor, share: float) -> torch.Tensor:
    """Boxes [N,4] (x0, y0, x1, y1) grown by ``share`` of their width and height on each side."""
    grow = (boxes[:, 2:] - boxes[:, :2]) * share
    return torch.cat([boxes[:, :2] - grow, boxes[:, 2:] + grow], -1)


def _on_box(kp_box: torch.Tensor, boxes: torch.Tensor, min_iou: float, min_span: float) -> torch.Tensor:
    """[N] bool: the skeleton of keypoint box kp_box[i] is the person of boxes[i] (both [N,4]): IoU >= ``min_iou``,
    or the keypoint box lies >= 90 % inside the person box grown by 10 % and spans >= ``min_span`` of its
    height. A skeleton stretched over several people does neither."""
    area = (kp_box[:, 2:] - kp_box[:, :2]).clamp(min=1e-6).prod(-1)
    inside = box_intersection(kp_box, _grown(boxes, 0.1)) / area >= 0.9
    span = (kp_box[:, 3] - kp_box[:, 1]) >= min_span * (boxes[:, 3] - boxes[:, 1])
    return (box_iou(kp_box, boxes) >= min_iou) | (inside & span)


def _match_boxes(tracked: torch.Tensor, new: torch.Tensor, min_iou: float) -> torch.Tensor:
    """[T] index of the person box in ``new`` [P,4] that each tracked keypoint box [T,4] is (-1: none): the
    assignment of largest total IoU among pairs overlapping at least ``min_iou``."""
    match = torch.full((len(tracked),), -1, dtype=torch.long, device=tracked.device)
    if len(tracked) == 0 or len(new) == 0:
        return match
    overlap = box_iou(tracked[:, None], new[None]).cpu().numpy()
    rows, cols = linear_sum_assignment(-overlap)
    good = overlap[rows, cols] >= min_iou
    match[torch.as_tensor(rows[good], device=tracked.device)] = torch.as_tensor(cols[good], device=tracked.device)
    return match


def _untracked(new: torch.Tensor, tracked: torch.Tensor, max_dist: float = 0.5) -> torch.Tensor:
    """[P] bool: detector ROIs whose centre is not within ``max_dist``·side of a tracked ROI's centre."""
    if len(tracked) == 0 or len(new) == 0:
        return torch.ones(len(new), dtype=torch.bool, device=new.device)
    dist = torch.cdist(new[:, :2], tracked[:, :2])
    near = dist < max_dist * tracked[None, :, 2]
    return ~near.any(dim=1)


def _keypoint_boxes(points: torch.Tensor, visibility: torch.Tensor, min_vis: float = 0.5) -> torch.Tensor:
    """[N,4] box (x0, y0, x1, y1) around each person's landmarks [N,L,2] visible ≥ ``min_vis`` (all when
    fewer than 4 are)."""
    seen = visibility >= min_vis
    seen = torch.where(seen.sum(-1, keepdim=True) >= 4, seen, torch.ones_like(seen))
    inf = torch.tensor(float("inf"), device=points.device)
    lo = torch.where(seen[..., None], points, inf).amin(1)
    hi = torch.where(seen[..., None], points, -inf).amax(1)
    return torch.cat([lo, hi], -1)


def _unique(
    boxes: torch.Tensor,
    points: torch.Tensor,
    score: torch.Tensor,
    alive: torch.Tensor,
    iou: float,
    share: float,
    head: float,
) -> torch.Tensor:
    """[N] bool: one skeleton per person among ``alive`` ones, best score first. Two skeletons are one person
    when their keypoint boxes [N,4] overlap by IoU > ``iou``, when at least ``share`` of their BlazePose
    landmarks [N,33,2] lie within 10 % of the smaller skeleton's box diagonal of each other (a partial second
    copy), or when their head landmarks (0-10) lie on average within ``head`` x the larger skeleton's torso
    length of each other (a copy of the upper body whose legs were squeezed into a smaller box)."""
    keep = torch.zeros_like(alive)
    if not bool(alive.any()):
        return keep
    diag = (boxes[:, 2:] - boxes[:, :2]).norm(dim=-1)
    near = (points[:, None] - points[None]).norm(dim=-1) < 0.1 * torch.minimum(diag[:, None], diag[None])[..., None]
    over = (box_iou(boxes[:, None], boxes[None]) > iou) | (near.float().mean(-1) >= share)
    over |= _same_head(points, head)
    order = torch.argsort(torch.where(alive, score, -1.0), descending=True).tolist()
    keep[greedy(over, order[: int(alive.sum())])] = True
    return keep


def _enclosed(boxes: torch.Tensor, score: torch.Tensor, alive: torch.Tensor, max_score: float, share: float):
    """[N] bool: ``alive`` skeletons whose person box scored below ``max_score`` and whose keypoint box [N,4]
    lies at least ``share`` inside the union of the keypoint boxes of alive skeletons scored higher (share
    measured on an 8x8 grid of points spread over the box)."""
    t = (torch.arange(8, device=boxes.device, dtype=boxes.dtype) + 0.5) / 8
    size = boxes[:, 2:] - boxes[:, :2]
    x = boxes[:, None, None, 0] + size[:, None, None, 0] * t[None, None, :]  # [N,1,8]
    y = boxes[:, None, None, 1] + size[:, None, None, 1] * t[None, :, None]  # [N,8,1]
    pts = torch.stack(torch.broadcast_tensors(x, y), -1).reshape(len(boxes), -1, 1, 2)  # [N,64,1,2]
    inside = ((pts >= boxes[None, None, :, :2]) & (pts <= boxes[None, None, :, 2:])).all(-1)  # [N,64,M]
    surer = alive[None, :] & (score[None, :] > score[:, None])  # [N,M]
    covered = (inside & surer[:, None, :]).any(-1).float().mean(-1)
    return alive & (score < max_score) & (covered >= share)


def _head_copies(points: torch.Tensor, score: torch.Tensor, alive: torch.Tensor, sure: float, head: float):
    """[N] bool: ``alive`` skeletons whose person box scored below ``sure`` and whose head landmarks (0-10 of
    [N,33,2]) lie on average within ``head`` x the larger torso length (shoulder to hip centre) of those of an
    alive skeleton whose box scored at least ``sure``."""
    doubtful = alive & (score < sure)
    return doubtful & (_same_head(points, head) & (alive & (score >= sure))[None, :]).any(-1)


def _same_head(points: torch.Tensor, head: float) -> torch.Tensor:
    """[N,N] bool: the head landmarks (0-10) of skeletons i and j ([N,33,2]) lie on average within ``head`` x the
    larger of their torso lengths (shoulder to hip centre) of each other."""
    torso = ((points[:, 11] + points[:, 12]) / 2 - (points[:, 23] + points[:, 24]) / 2).norm(dim=-1)
    apart = (points[:, None, :11] - points[None, :, :11]).norm(dim=-1).mean(-1)  # [N,N] pixels
    return apart < head * torch.maximum(torso[:, None], torso[None])


def _empty(device: torch.device) -> Poses2D:
    z = torch.zeros
    return Poses2D(
        landmarks=z(0, NUM_LANDMARKS, 2, device=device),
        depth=z(0, NUM_LANDMARKS, device=device),
        visibility=z(0, NUM_LANDMARKS, device=device),
        presence=z(0, NUM_LANDMARKS, device=device),
        world=z(0, NUM_LANDMARKS, 3, device=device),
        keypoints=z(0, skeleton.NUM_JOINTS, 2, device=device),
        confidence=z(0, skeleton.NUM_JOINTS, device=device),
        score=z(0, device=device),
        rois=z(0, 4, device=device),
        detected=z(0, dtype=torch.bool, device=device),
    )
