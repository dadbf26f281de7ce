"""Person boxes from NanoDet (COCO-80, class 0 = person) on the full frame and on overlapping tiles.

Each view (the letterboxed frame, then square tiles for small and far people) is cropped to 416². The tiles
run, as one batch, only where the whole frame shows a reason to look closer (an uncertain or a small
person, or nobody sure). Per view: GFL box decoding (4 sides × 11 bins, distance = softmax · bin · stride
from the cell centre), then greedy NMS over all views together; a box cut by a tile's edge is dropped when
another view sees that person whole. Boxes are pixels of the input image: (x0, y0, x1, y1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from abspose.models.human_models import load_graph

INPUT_SIZE = 416
BATCH = 8  # views per NanoDet call: a large frame's many tiles run in chunks (bounded memory)
STRIDES = (8, 16, 32)
# NanoDet's input normalization (BGR order), not in the graph
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)


@dataclass
class DetectorOptions:
    """Thresholds and views of the person detector."""

    min_score: float = 0.3  # person class score
    nms_iou: float = 0.5  # boxes overlapping more are one person
    tiles: int = 2  # tiles along the long side (0: full frame only); tile side = short side of the frame
    tile_overlap: float = 0.25  # minimum overlap between neighbouring tiles, fraction of the tile side
    # px: the largest tile side (<= 0: no limit); a frame whose short side is larger gets rows of smaller
    # tiles, so that NanoDet sees no tile coarser than 416 / tile_max (the labelled frames' short sides reach
    # 958 px: at larger ones, a far person shrank below what it finds; docs/detect2d.md)
    tile_max: float = 960.0
    min_height: float = 40.0  # px in the input image: smaller boxes are dropped (no usable landmarks)
    # tiles only where the whole frame needs them (False: always): a box scored in [tile_score, min_score)
    # (an uncertain person), a sure person shorter than tile_small x the frame's long side, or nobody sure
    adaptive_tiles: bool = True
    tile_score: float = 0.15
    tile_small: float = 0.25


def views(h: int, w: int, tiles: int, overlap: float, tile_max: float = math.inf) -> torch.Tensor:
    """Square views [V, 4] (cx, cy, side px, 0): the whole frame letterboxed, then tiles: squares of the
    frame's short side along its long side, or, where that side exceeds ``tile_max`` px, the fewest rows of
    squares at most ``tile_max`` px (at least half the model input: finer tiles only upsample) that span it;
    evenly spaced, neighbours overlapping at least ``overlap``·side, at least ``tiles`` of them along the long
    side."""
    out = [[w / 2, h / 2, float(max(h, w)), 0.0]]
    long_side, short = max(h, w), min(h, w)
    tile_max = max(tile_max, INPUT_SIZE / 2) if tile_max > 0 else 0.0
    rows = max(1, math.ceil((short / tile_max - overlap) / (1 - overlap) - 1e-9)) if tile_max > 0 else 1
    side = short / (rows - (rows - 1) * overlap)
    if tiles > 0 and long_side > side * 1.05:
        n = max(tiles, math.ceil((long_side - side * overlap) / (side * (1 - overlap))))
        along = np.linspace(side / 2, long_side - side / 2, n)
        across = np.linspace(side / 2, short - side / 2, rows)
        out += [[a, b, side, 0.0] if w >= h else [b, a, side, 0.0] for b in across for a in along]
    return torch.tensor(out, dtype=torch.float32)


def static_hw(x: torch.Tensor) -> torch.Tensor:
    """``x`` [N,C,H,W] marked so that a compiled model specializes on C, H and W and leaves only the batch
    symbolic (a flag on the tensor: free when the models run eagerly)."""
    for dim in (1, 2, 3):
        torch._dynamo.mark_static(x, dim)
    return x


def in_chunks(
    fn: Callable[[torch.Tensor], Sequence[torch.Tensor]], x: torch.Tensor, size: int
) -> tuple[torch.Tensor, ...]:
    """``fn`` on ``x`` ``size`` rows at a time, each of its outputs concatenated over the chunks: the result of
    one call in bounded memory (a large frame's many tiles, a crowd's many crops)."""
    outs = [fn(chunk) for chunk in x.split(size)]
    return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))


def box_intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection areas of boxes a [...,4] and b [...,4] (x0, y0, x1, y1), broadcast against each other."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    return (rb - lt).clamp(min=0).prod(-1)


def box_area(a: torch.Tensor) -> torch.Tensor:
    return (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes a and b broadcast against each other (a[:, None], b[None] for all pairs)."""
    inter = box_intersection(a, b)
    return inter / (box_area(a) + box_area(b) - inter).clamp(min=1e-9)


def greedy(over: torch.Tensor, order: list[int]) -> list[int]:
    """Greedy suppression: walking ``order``, keep each index not yet suppressed and suppress the row
    ``over[i]`` [M] bool of what it covers. One step per candidate (tens), not per anchor."""
    taken = torch.zeros(over.shape[0], dtype=torch.bool)
    over = over.cpu()
    kept = []
    for i in order:
        if not taken[i]:
            kept.append(i)
            taken |= over[i]
    return kept


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou: float, partial: torch.Tensor | None = None, iom: float = 0.6
) -> torch.Tensor:
    """Greedy NMS: indices of kept boxes [K], by descending score (boxes [M,4] x0, y0, x1, y1). A box marked
    ``partial`` [M] also yields where a kept box covers more than ``iom`` of it."""
    order = torch.argsort(scores, descending=True)
    boxes = boxes[order]
    over = box_iou(boxes[:, None], boxes[None]) > iou
    if partial is not None:  # row i (kept) suppresses column j (partial) covering most of j
        inter = box_intersection(boxes[:, None], boxes[None])
        over |= (inter / box_area(boxes)[None, :].clamp(min=1e-9) > iom) & partial[order][None, :]
    return order[greedy(over, list(range(len(boxes))))]


class PersonDetector:
    """NanoDet person boxes on any torch device: :meth:`detect` on the crops of :func:`views`."""

    def __init__(
        self, device: torch.device, dtype: torch.dtype = torch.float32, options: DetectorOptions | None = None
    ):
        self.device = device
        self.dtype = dtype
        self.options = options or DetectorOptions()
        self.model = load_graph("nanodet", device=device).to(dtype)
        self.mean = torch.tensor(MEAN_BGR, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD_BGR, device=device).view(1, 3, 1, 1)
        cells = []
        for stride in STRIDES:
            n = INPUT_SIZE // stride
            y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            centre = torch.stack([x, y], -1).reshape(-1, 2).float().add(0.5).mul(stride)
            cells.append(torch.cat([centre, torch.full((n * n, 1), float(stride))], -1))
        self.cells = torch.cat(cells).to(device)  # [3549, 3]: cx, cy, stride in the 416 view
        self.bins = torch.arange(11, device=device, dtype=torch.float32)
        self.views_run = 0  # views NanoDet saw on the last frame (1: the tiles were not needed)

    @torch.inference_mode()
    def raw(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """crops [V,3,416,416] RGB 0..255 -> person scores [V,3549] and box-side logits [V,3549,4,11] (x0, y0, x1,
        y1 distances from each cell's centre over 11 bins of one stride; :meth:`decode` reads the candidates')."""
        x = (crops.flip(1) - self.mean) / self.std
        outs = self.model(static_hw(x.to(self.dtype).contiguous()))
        by_shape = {tuple(o.shape[1:]): o.float() for o in outs}
        scores, dists = [], []
        for stride in STRIDES:
            n = (INPUT_SIZE // stride) ** 2
            scores.append(by_shape[(n, 80)][..., 0])
            dists.append(by_shape[(n, 44)])
        return torch.cat(scores, 1), torch.cat(dists, 1).reshape(len(crops), -1, 4, 11)

    def raw_views(self, crop: Callable[[torch.Tensor], torch.Tensor], rois: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """:meth:`raw` of the views ``rois`` [V,4] cropped by ``crop``, ``BATCH`` views at a time."""
        return in_chunks(lambda chunk: self.raw(crop(chunk)), rois, BATCH)

    def decode(
        self, score: torch.Tensor, dist: torch.Tensor, rois: torch.Tensor, h: int, w: int, min_score: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes [K,4] (pixels) and scores [K] ≥ ``min_score`` of :meth:`raw`'s outputs for the views ``rois``
        [V,4], after NMS over all views (only these cells' box sides are decoded)."""
        opts = self.options
        view, cell = torch.nonzero(score >= min_score, as_tuple=True)
        if len(view) == 0:
            return rois.new_zeros(0, 4), rois.new_zeros(0)
        c = self.cells[cell]
        d = (dist[view, cell].softmax(-1) @ self.bins) * c[:, 2:3]  # expected distance, strides -> pixels
        local = torch.cat([c[:, :2] - d[:, :2], c[:, :2] + d[:, 2:]], -1)  # x0, y0, x1, y1 in the 416 view
        r = rois.to(self.device)[view]
        scale = (r[:, 2] / INPUT_SIZE)[:, None]
        origin = r[:, :2] - r[:, 2:3] / 2
        boxes = local * scale + origin.repeat(1, 2)
        inner = torch.stack([origin[:, 0], origin[:, 1], origin[:, 0] + r[:, 2], origin[:, 1] + r[:, 2]], -1)
        boxes = torch.cat([torch.maximum(boxes[:, :2], inner[:, :2]), torch.minimum(boxes[:, 2:], inner[:, 2:])], -1)
        frame = torch.tensor([0.0, 0.0, w, h], device=self.device)
        boxes = torch.cat([torch.maximum(boxes[:, :2], frame[:2]), torch.minimum(boxes[:, 2:], frame[2:])], -1)
        s = score[view, cell]
        # a box touching a tile's inner edge sees part of a person: it yields to a whole one
        margin = 2.0 * scale[:, 0]
        cut = ((boxes[:, :2] - inner[:, :2] < margin[:, None]) & (inner[:, :2] > frame[:2] + 1)).any(-1)
        cut |= ((inner[:, 2:] - boxes[:, 2:] < margin[:, None]) & (inner[:, 2:] < frame[2:] - 1)).any(-1)
        rank = s - cut.float()  # NMS order: whole boxes first
        tall = (boxes[:, 3] - boxes[:, 1]) >= opts.min_height
        boxes, s, rank = boxes[tall], s[tall], rank[tall]
        keep = nms(boxes, rank, opts.nms_iou, cut[tall])
        return boxes[keep], s[keep]

    @torch.inference_mode()
    def detect(self, crop: Callable[[torch.Tensor], torch.Tensor], h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Person boxes [K,4] (pixels) and scores [K] of an H x W frame; ``crop(rois)`` gives the 416² crops
        [V,3,416,416] (RGB 0..255) of views [V,4]. The tiles run only where the whole frame needs them."""
        opts = self.options
        rois = views(h, w, opts.tiles, opts.tile_overlap, opts.tile_max).to(self.device)
        self.views_run = len(rois)
        if len(rois) == 1 or not opts.adaptive_tiles:
            return self.decode(*self.raw_views(crop, rois), rois, h, w, opts.min_score)
        self.views_run = 1
        score, dist = self.raw(crop(rois[:1]))
        boxes, s = self.decode(score, dist, rois[:1], h, w, min(opts.tile_score, opts.min_score))
        sure = s >= opts.min_score
        small = (boxes[:, 3] - boxes[:, 1]) < opts.tile_small * max(h, w)
        if sure.any() and sure.all() and not small.any():
            return boxes, s
        self.views_run = len(rois)
        more_score, more_dist = self.raw_views(crop, rois[1:])
        score, dist = torch.cat([score, more_score]), torch.cat([dist, more_dist])
        return self.decode(score, dist, rois, h, w, opts.min_score)
