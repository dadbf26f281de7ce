"""NanoDet person boxes: the views (frame + tiles), NMS with cut boxes, boxes on a real group photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from abspose.person_detector import nms, views
from abspose.training.people_recall import iou, load_labels, mosaic, read_labelled_image, score_image

from conftest import data_path


def test_views_cover_the_long_side_with_overlapping_squares():
    v = views(540, 960, tiles=2, overlap=0.25).numpy()
    assert v[0].tolist() == [480, 270, 960, 0]  # the whole frame, letterboxed
    tiles = v[1:]
    # two 540-px squares would overlap by 120 px (22 %) only: a third one keeps neighbours 25 % apart
    assert len(tiles) == 3 and (tiles[:, 2] == 540).all() and (tiles[:, 1] == 270).all()
    assert tiles[0, 0] - 270 == 0 and tiles[-1, 0] + 270 == 960  # flush with both ends
    overlap = (tiles[:-1, 0] + 270) - (tiles[1:, 0] - 270)
    assert (overlap >= 0.25 * 540).all()
    assert len(views(540, 900, tiles=2, overlap=0.25)) == 3  # 180 px overlap: two are enough
    # a wide panorama needs more tiles to keep the overlap; a portrait tiles along y; a square not at all
    assert len(views(400, 2000, tiles=2, overlap=0.25)) - 1 == 7
    assert (views(960, 540, 2, 0.25)[1:, 0] == 270).all()
    assert len(views(500, 510, 2, 0.25)) == 1 and len(views(540, 960, 0, 0.25)) == 1
    assert len(views(540, 960, 1, 0.25)) == 4  # one tile asked: as many as the long side needs, as for two


def test_large_frames_get_rows_of_tiles_no_larger_than_tile_max():
    # a 1080p frame: two rows of 617-px squares (1080 = 617 · (2 − 0.25)), four along its width
    v = views(1080, 1920, tiles=2, overlap=0.25, tile_max=960).numpy()
    tiles = v[1:]
    assert len(tiles) == 8 and np.allclose(tiles[:, 2], 1080 / 1.75)
    side = tiles[0, 2]
    for axis, extent in ((0, 1920), (1, 1080)):
        centres = np.unique(tiles[:, axis].round(3))
        assert np.isclose(centres[0] - side / 2, 0, atol=0.01) and np.isclose(centres[-1] + side / 2, extent)  # flush
        assert (side - np.diff(centres) >= 0.25 * side - 0.01).all()  # neighbours overlap >= 25 %
    # 4K: three rows of 864 px; frames up to the limit keep one row of their short side, as does no limit
    assert np.allclose(views(2160, 3840, 2, 0.25, 960)[1:, 2], 864) and len(views(2160, 3840, 2, 0.25, 960)) == 19
    assert views(853, 1280, 2, 0.25, 960)[1:, 2].tolist() == [853, 853]
    assert views(1080, 1920, 2, 0.25, 0)[1:, 2].tolist() == [1080] * 3 == views(1080, 1920, 2, 0.25)[1:, 2].tolist()
    assert len(views(1080, 1920, 2, 0.25, 1.0)) == len(views(1080, 1920, 2, 0.25, 208))  # no tiles below 208 px
    assert views(1080, 1920, 2, 0.25, 300)[1:, 2].max() <= 300 < views(1080, 1920, 2, 0.25, 400)[1:, 2].max()
    assert 150 < views(1080, 1920, 2, 0.25, 1.0)[1:, 2].max() <= 208  # not 1 px: half the 416-px model input
    # a portrait frame: the rows run down its height
    portrait = views(1920, 1080, 2, 0.25, 960)[1:]
    assert len(portrait) == 8 and len(np.unique(portrait[:, 0])) == 2


def test_nms_keeps_the_best_of_overlapping_boxes_and_drops_cut_copies():
    boxes = torch.tensor([[0, 0, 10, 20], [1, 0, 11, 20], [30, 0, 40, 20], [0, 0, 10, 12.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (the top 60 % of box 0, as a tile's edge cuts a person) has IoU 0.6 with box 0: NMS at 0.7 keeps it
    assert sorted(nms(boxes, scores, 0.7).tolist()) == [0, 2, 3]
    # marked cut, and ranked after the whole boxes, it yields to the whole box covering it
    partial = torch.tensor([False, False, False, True])
    assert sorted(nms(boxes, scores - partial.float(), 0.7, partial).tolist()) == [0, 2]
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]  # best first; box 0 and 1 overlap box 3 above 0.5


def test_a_box_at_the_frames_edge_is_whole_and_one_at_a_tiles_inner_edge_is_cut():
    """Decoding NanoDet's outputs (a score and 4 x 11 distance bins per cell, made by hand here): a sure box
    reaching the right edge of its view is whole where that edge is the frame's, and keeps its place ahead of a
    weaker box on the same person; where it is a tile's inner edge inside the frame, it sees part of a person
    and yields to that whole box."""
    from abspose.person_detector import PersonDetector

    det = PersonDetector(torch.device("cpu"))
    n = len(det.cells)
    first32 = n - 13 * 13  # the stride-32 cells come last, row by row

    def outputs(*cells):
        score, dist = torch.zeros(1, n), torch.full((1, n, 4, 11), -50.0)
        for (row, col), s, sides in cells:  # sides: left, top, right, bottom in strides from the cell's centre
            score[0, first32 + row * 13 + col] = s
            for k, v in enumerate(sides):
                dist[0, first32 + row * 13 + col, k, v] = 50.0
        return score, dist

    # a sure box x 304..432 (cut to 416 by the view), y 80..336; a weaker one x 304..400 on the same person
    score, dist = outputs(((6, 12), 0.9, (3, 4, 1, 4)), ((6, 11), 0.5, (2, 4, 1, 4)))
    view = torch.tensor([[208.0, 208.0, 416.0, 0.0]])
    boxes, scores = det.decode(score, dist, view, 416, 416, 0.3)  # the view is the whole 416-px frame
    assert scores.tolist() == pytest.approx([0.9]) and boxes.tolist() == [[304.0, 80.0, 416.0, 336.0]]
    boxes, scores = det.decode(score, dist, view, 416, 832, 0.3)  # the left tile of a frame twice as wide
    assert scores.tolist() == pytest.approx([0.5]) and boxes.tolist() == [[304.0, 80.0, 400.0, 336.0]]


def test_nanodet_boxes_everyone_in_the_group_photo(blazepose):
    data = data_path("images")  # skips without the shared data
    labels = next(lab for lab in load_labels() if lab.key == "group")
    img = read_labelled_image(labels, data.parent)
    model = blazepose()
    boxes, scores = model.person_boxes(torch.from_numpy(img).permute(2, 0, 1).float(), img)
    assert ((scores >= 0.3) & (scores <= 1)).all()
    overlap = iou(boxes.numpy().astype(np.float64), labels.visible)
    assert (overlap.max(0) >= 0.5).all()  # every person has a box
    # NanoDet also boxes the white robot (score 0.43): the landmark model's presence flag rejects it
    # (test_people_recall: no skeleton on a robot)
    assert (overlap.max(1) >= 0.5).sum() >= 9


def test_tiles_add_small_far_pedestrians(blazepose):
    data = data_path("images")
    labels = next(lab for lab in load_labels() if lab.key == "street_0")
    img = read_labelled_image(labels, data.parent)
    rgb = torch.from_numpy(img).permute(2, 0, 1).float()
    small = {}
    for tiles in (0, 2):
        boxes, _ = blazepose(tiles=tiles).person_boxes(rgb, img)
        small[tiles] = int(((boxes[:, 3] - boxes[:, 1]) < 80).sum())
    # measured: 7 boxes 40-80 px tall from the whole frame alone, 13 with the tiles besides it
    assert small[0] >= 4 and small[2] >= small[0] + 4


def test_tiles_run_only_where_the_whole_frame_needs_them(blazepose):
    """A frame whose people the whole view boxes surely and large is not tiled, and loses nobody; a street
    with small and uncertain pedestrians is tiled as before."""
    data = data_path("images")
    for key, tiled in (("coco_skier", False), ("mp_sitting", False), ("street_0", True), ("group", True)):
        labels = next(lab for lab in load_labels() if lab.key == key)
        img = read_labelled_image(labels, data.parent)
        rgb = torch.from_numpy(img).permute(2, 0, 1).float()
        adaptive = blazepose()
        boxes, scores = adaptive.person_boxes(rgb, img)
        always, _ = blazepose(adaptive_tiles=False).person_boxes(rgb, img)
        assert (adaptive.people.views_run > 1) == tiled, key
        if tiled:
            torch.testing.assert_close(boxes, always)
        else:  # the same people (a tile may nudge a box by a few pixels)
            assert len(boxes) == len(always) >= 1
            assert (iou(boxes.numpy().astype(np.float64), always.numpy().astype(np.float64)).max(1) > 0.9).all()
            assert (scores >= 0.3).all()
    # the skier alone low in a grey 1080p frame: the whole view boxes him surely (0.86) but 335 px tall, under a
    # quarter of the frame's long side, and nobody uncertain: others may be smaller still, so the tiles run
    labels = next(lab for lab in load_labels() if lab.key == "coco_skier")
    skier = read_labelled_image(labels, data.parent)
    frame = np.full((1080, 1920, 3), 128, np.uint8)
    frame[600 : 600 + skier.shape[0], 100 : 100 + skier.shape[1]] = skier
    adaptive = blazepose()
    boxes, scores = adaptive.person_boxes(torch.from_numpy(frame).permute(2, 0, 1).float(), frame)
    assert adaptive.people.views_run == len(views(1080, 1920, 2, 0.25, 960)) and len(boxes) == 1
    # nobody at all: every view looked at, no box
    grey = np.full((1080, 1920, 3), 128, np.uint8)
    boxes, scores = adaptive.person_boxes(torch.from_numpy(grey).permute(2, 0, 1).float(), grey)
    assert adaptive.people.views_run == len(views(1080, 1920, 2, 0.25, 960))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_rows_of_tiles_keep_far_people_in_large_frames(blazepose):
    """Nine street frames side by side make a 2880x1620 frame of real pedestrians at their own pixel size:
    tiles of its 1620-px short side shrink them 3.9x for NanoDet; rows of tiles of at most 960 px do not."""
    from abspose.detect2d import _keypoint_boxes

    data = data_path("images").parent
    big, labels = mosaic(
        [(lab, read_labelled_image(lab, data)) for lab in load_labels() if lab.key.startswith("street")], 3
    )
    assert big.shape == (1620, 2880, 3) and len(labels.visible) == 47
    scores = {}
    for tile_max in (960.0, 0.0):
        poses = blazepose(tile_max=tile_max)(big)
        scores[tile_max] = score_image(
            labels, _keypoint_boxes(poses.landmarks, poses.visibility).numpy(), big.shape[:2]
        )
    # measured: 44/47 people and 44 of 46 skeletons on a person with rows of 926-px tiles; 35/47 without
    assert scores[960.0].recall >= 0.9 and scores[960.0].precision >= 0.9
    assert scores[0.0].recall <= scores[960.0].recall - 0.1


def test_people_lying_or_turned_get_the_skeleton_they_have_upright(blazepose):
    """The sitting woman and the skier turned by 90° (lying) and 270°: their box is wide, BlazePose's detector
    on it gives the body's rotation, and the rotated crop gives the skeleton of the upright image, turned.
    Without it the landmark model draws an upright body in the box, or nobody."""
    data = data_path("images").parent
    for key in ("mp_sitting", "coco_skier"):
        img = read_labelled_image(next(lab for lab in load_labels() if lab.key == key), data)
        h, w = img.shape[:2]
        upright = blazepose()(img).landmarks[0].numpy()
        torso = np.linalg.norm((upright[11] + upright[12]) / 2 - (upright[23] + upright[24]) / 2)
        for k in (1, 3):
            turned = np.ascontiguousarray(np.rot90(img, k))  # counter-clockwise: (x, y) -> (y, w - x)
            expect = np.stack([upright[:, 1], w - upright[:, 0]], -1) if k == 1 else None
            if k == 3:  # three turns: (x, y) -> (h - y, x)
                expect = np.stack([h - upright[:, 1], upright[:, 0]], -1)
            for orient, limit in ((True, 0.1), (False, None)):
                poses = blazepose(orient=orient)(turned)
                err = [np.median(np.linalg.norm(p.numpy() - expect, axis=-1)) / torso for p in poses.landmarks]
                # measured: 0.018-0.030 torso lengths with the rotated crop; without, none found, 0.26 or 0.87-0.96
                if orient:
                    assert len(poses) == 1 and err[0] < limit, (key, k, err)
                else:
                    assert min(err, default=np.inf) > 0.2, (key, k, err)


def test_a_box_at_least_orient_aspect_as_wide_as_tall_is_looked_at_for_a_turn(blazepose):
    """The sitting woman lying (turned by 90°): her box reshaped about its centre to 0.75 and 0.65 as wide as tall
    (``orient_aspect`` 0.7): the first gets BlazePose's detection of the turned body, the second stays upright."""
    labels = next(lab for lab in load_labels() if lab.key == "mp_sitting")
    turned = np.ascontiguousarray(np.rot90(read_labelled_image(labels, data_path("images").parent), 1))
    rgb = torch.from_numpy(turned).permute(2, 0, 1).float()
    model = blazepose()
    box = model.person_boxes(rgb, turned)[0][:1]
    centre, height = (box[:, 0] + box[:, 2]) / 2, box[:, 3] - box[:, 1]
    angles = []
    for aspect in (0.75, 0.65):
        reshaped = torch.stack([centre - aspect * height / 2, box[:, 1], centre + aspect * height / 2, box[:, 3]], -1)
        angles.append(float(model.oriented_rois(rgb, reshaped, turned)[0, 3]))
    # measured: -1.69 rad (a quarter turn) at 0.75
    assert abs(abs(angles[0]) - np.pi / 2) < 0.4 and angles[1] == 0.0


def test_views_in_chunks_give_the_boxes_of_one_batch(blazepose, monkeypatch):
    """A large frame's tiles run BATCH views per NanoDet call (memory); the boxes are those of one batch."""
    from abspose import person_detector

    labels = next(lab for lab in load_labels() if lab.key == "street_0")
    img = read_labelled_image(labels, data_path("images").parent)
    rgb = torch.from_numpy(img).permute(2, 0, 1).float()
    model = blazepose(adaptive_tiles=False)
    boxes, scores = model.person_boxes(rgb, img)
    assert model.people.views_run == 4
    monkeypatch.setattr(person_detector, "BATCH", 1)
    chunked, chunked_scores = model.person_boxes(rgb, img)
    torch.testing.assert_close(chunked, boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(chunked_scores, scores, atol=1e-5, rtol=0)


def _paired(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes a [N,4] and b [M,4] paired one to one by IoU (Hungarian): rows, cols and the pairs' IoU."""
    overlap = iou(a.double().numpy(), b.double().numpy())
    rows, cols = linear_sum_assignment(-overlap)
    return rows, cols, overlap[rows, cols]


@pytest.mark.parametrize("bf16", [False, True])
def test_compiled_nanodet_boxes_as_eager_for_any_number_of_views(blazepose, bf16):
    """compile=True compiles NanoDet too, at start-up, with a symbolic batch: a 4:3 frame (whole frame + 2
    tiles) and a square one (1 view) give eager's boxes without recompiling. With bf16 (where the CPU has it)
    NanoDet compiles in bfloat16, its warm-up input in the model's dtype (measured: the group photo's 12 and
    its square crop's 6 boxes within 1.3 px and 0.004 in score of eager bf16 on an AVX-512 BF16 CPU; on one
    with AMX within 3.1 px, IoU >= 0.973, and two boxes scored 0.621 and 0.625 traded ranks)."""
    from torch._dynamo.utils import counters

    from abspose.detect2d import BlazePose, _keypoint_boxes
    from abspose.precision import bf16_is_fast

    if bf16 and not bf16_is_fast("cpu"):
        pytest.skip("this CPU has no native bfloat16: bf16 runs NanoDet in fp32 (the case without bf16)")
    data = data_path("images")
    labels = next(lab for lab in load_labels() if lab.key == "group")
    img = read_labelled_image(labels, data.parent)
    eager = BlazePose("cpu", bf16=True) if bf16 else blazepose()
    compiled = BlazePose("cpu", compile=True, bf16=bf16)
    assert compiled.compiled and compiled.compile_error is None
    assert compiled.people.dtype == (torch.bfloat16 if bf16 else torch.float32)
    min_iou, score_tol = (0.95, 0.01) if bf16 else (0.995, 2e-3)
    graphs = counters["stats"]["unique_graphs"]
    for image in (img, np.ascontiguousarray(img[:, : img.shape[0]])):
        rgb = torch.from_numpy(image).permute(2, 0, 1).float()
        (ref, ref_scores), (out, scores) = eager.person_boxes(rgb, image), compiled.person_boxes(rgb, image)
        assert len(out) == len(ref) >= 3
        # paired by overlap, not by rank: two boxes scored within rounding of each other may swap places
        rows, cols, overlap = _paired(out, ref)
        assert overlap.min() >= min_iou, overlap
        torch.testing.assert_close(scores[rows], ref_scores[cols], atol=score_tol, rtol=0)
    # the whole pipeline: the same skeletons; in bf16 one skeleton from a box scored next to the rules' 0.45 may
    # come or go with the rounding (measured on an AMX CPU: the group photo's robot phantom, box 0.41, before
    # the person-mask check dropped it)
    (a, b) = (_keypoint_boxes(p.landmarks, torch.ones_like(p.visibility)) for p in (compiled(img), eager(img)))
    same = int((_paired(a, b)[2] >= 0.9).sum())
    assert same >= max(len(a), len(b)) - (1 if bf16 else 0) and same >= 8, (len(a), len(b), same)
    assert counters["stats"]["unique_graphs"] == graphs, "a frame recompiled a model compiled at start-up"


def test_bf16_nanodet_boxes_the_people_fp32_boxes():
    """``bf16=True``: on a CPU with native bfloat16 NanoDet runs in bf16 (2x faster there): on the labelled real
    crowds every sure fp32 box (score >= 0.45) has its bf16 box (IoU >= 0.85, score within 0.02); elsewhere it
    stays fp32, as it does by default. Measured on an AVX-512 BF16 CPU: scores within 0.008, only boxes near
    the 0.3 threshold come and go."""
    from abspose.detect2d import BlazePose
    from abspose.precision import bf16_is_fast

    ours, fp32 = BlazePose("cpu", bf16=True), BlazePose("cpu")
    assert fp32.people.dtype == torch.float32
    assert ours.people.dtype == (torch.bfloat16 if bf16_is_fast("cpu") else torch.float32)
    assert {p.dtype for p in ours.landmark.parameters()} == {torch.float32}  # the parity model stays fp32
    if ours.people.dtype == torch.float32:
        return  # this CPU has no native bf16: both run the fp32 model (asserted above)
    data = data_path("images").parent
    for labels in load_labels():
        if not labels.key.startswith(("group", "street", "tue")):
            continue
        img = read_labelled_image(labels, data)
        rgb = torch.from_numpy(img).permute(2, 0, 1).float()
        boxes, scores = ours.person_boxes(rgb, img)
        ref, ref_scores = fp32.person_boxes(rgb, img)
        sure = ref_scores >= 0.45
        overlap = iou(ref[sure].numpy().astype(np.float64), boxes.numpy().astype(np.float64))
        best = overlap.argmax(1)
        assert (overlap.max(1) >= 0.85).all(), labels.key
        assert (scores[best] - ref_scores[sure]).abs().max() <= 0.02, labels.key
