"""BlazePose in torch against mediapipe itself, on real photos and RGB-D frames; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from abspose import skeleton
from abspose.image import ImageError
from abspose.models.blazepose_weights import tasks_bundle

from conftest import REAL_IMAGES, TUE_FRAMES, data_path, read_rgb

mp = pytest.importorskip("mediapipe", reason="mediapipe==0.10.21 (test extra) is the parity oracle")

MEAN_PX, MAX_PX = 0.5, 2.0  # parity targets on visible landmarks


@pytest.fixture
def blazepose(blazepose):
    """These tests hold the mediapipe pipeline (BlazePose's own detector) to mediapipe: the parity path."""
    return lambda **opts: blazepose(**{"detector": "blazepose", **opts})


def errors(ours: np.ndarray, ref: np.ndarray, visible: np.ndarray) -> tuple[float, float]:
    d = np.linalg.norm(ours - ref, axis=-1)[visible]
    return float(d.mean()), float(d.max())


@pytest.fixture(scope="module")
def legacy_pose():
    pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)
    yield pose
    pose.close()


@pytest.fixture(scope="module")
def tasks_landmarker():
    """mediapipe Tasks PoseLandmarker built offline from the wheel's two models."""
    from mediapipe.tasks import python as mpt
    from mediapipe.tasks.python import vision

    opts = vision.PoseLandmarkerOptions(
        base_options=mpt.BaseOptions(model_asset_buffer=tasks_bundle()),
        num_poses=20,
        running_mode=vision.RunningMode.IMAGE,
    )
    landmarker = vision.PoseLandmarker.create_from_options(opts)
    yield landmarker
    landmarker.close()


@pytest.mark.parametrize("parts", REAL_IMAGES, ids=lambda parts: parts[-1])
def test_single_person_parity_with_mediapipe_solutions_pose(parts, legacy_pose, blazepose):
    path = data_path(*parts)
    img = read_rgb(path)
    h, w = img.shape[:2]
    res = legacy_pose.process(img)
    assert res.pose_landmarks is not None
    ref = np.array([[lm.x * w, lm.y * h, lm.visibility] for lm in res.pose_landmarks.landmark])
    poses = blazepose(refine_kernel=9)(img)  # the legacy binary refines in a 9x9 window
    assert len(poses) >= 1
    ours = poses.landmarks.numpy()
    best = np.linalg.norm(ours - ref[None, :, :2], axis=-1).mean(-1).argmin()  # solutions.pose keeps one person
    mean, worst = errors(ours[best], ref[:, :2], ref[:, 2] > 0.5)
    assert mean < MEAN_PX and worst < MAX_PX, f"{path.name}: mean {mean:.3f} px, max {worst:.3f} px"
    np.testing.assert_allclose(poses.visibility[best].numpy(), ref[:, 2], atol=0.02)


@pytest.mark.parametrize("parts", REAL_IMAGES, ids=lambda parts: parts[-1])
def test_multi_person_parity_with_mediapipe_tasks(parts, tasks_landmarker, blazepose):
    path = data_path(*parts)
    img = read_rgb(path)
    h, w = img.shape[:2]
    res = tasks_landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=img))
    ref = np.array([[[lm.x * w, lm.y * h, lm.visibility] for lm in person] for person in res.pose_landmarks])
    poses = blazepose()(img)
    assert len(poses) == len(ref) >= 1
    ours = poses.landmarks.numpy()
    rows, cols = linear_sum_assignment(np.linalg.norm(ours[:, None] - ref[None, :, :, :2], axis=-1).mean(-1))
    for i, j in zip(rows, cols, strict=True):
        mean, worst = errors(ours[i], ref[j, :, :2], ref[j, :, 2] > 0.5)
        assert mean < MEAN_PX and worst < MAX_PX, f"{path.name} person {i}: mean {mean:.3f} px, max {worst:.3f} px"


def test_max_people_keeps_the_best_scored_people(blazepose):
    img = read_rgb(data_path("images", "mediapipe_samples", "coupleanddog.jpeg"))
    everyone = blazepose()(img)
    assert len(everyone) == 2
    best = blazepose(max_people=1)(img)
    assert len(best) == 1 and float(best.score[0]) == pytest.approx(float(everyone.score.max()), abs=1e-4)


def test_joint_set_output_follows_the_skeleton_mapping(blazepose):
    img = read_rgb(data_path("rgbd", "tue_hero", "frames", f"{TUE_FRAMES[0]}_rgb.png"))
    poses = blazepose()(img)
    assert poses.keypoints.shape == (len(poses), skeleton.NUM_JOINTS, 2)
    pelvis = poses.keypoints[:, skeleton.JOINT_INDEX["pelvis"]]
    torch.testing.assert_close(pelvis, (poses.landmarks[:, 23] + poses.landmarks[:, 24]) / 2)
    assert torch.isnan(poses.keypoints[:, skeleton.JOINT_INDEX["spine"]]).all()
    assert ((poses.confidence >= 0) & (poses.confidence <= 1)).all()
    # the near person stands in the middle of the 640x480 frame
    assert 200 < float(pelvis[0, 0]) < 450 and 150 < float(pelvis[0, 1]) < 400


# --- bad input -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frame():
    return read_rgb(data_path("rgbd", "tue_hero", "frames", f"{TUE_FRAMES[0]}_rgb.png"))


def test_bgr_rgba_and_bgra_give_the_rgb_result(frame, blazepose):
    model = blazepose()
    ref = model(frame, "rgb8").landmarks
    for enc, img in (
        ("bgr8", frame[..., ::-1]),
        ("rgba8", np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])),
        ("bgra8", np.dstack([frame[..., ::-1], np.zeros(frame.shape[:2], np.uint8)])),
    ):
        torch.testing.assert_close(model(img, enc).landmarks, ref)
    # an RGBA array without an encoding is read as rgba8
    torch.testing.assert_close(model(np.dstack([frame, frame[..., :1]])).landmarks, ref)


def test_grayscale_still_finds_the_person(frame, blazepose):
    grey = (frame @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
    poses = blazepose()(grey, "mono8")
    assert len(poses) == 1
    ref = blazepose()(frame)
    assert np.linalg.norm((poses.keypoints - ref.keypoints)[0, skeleton.INPUT_INDEX].numpy(), axis=-1).mean() < 10
    mono16 = grey.astype(np.uint16) * 257
    torch.testing.assert_close(blazepose()(mono16, "mono16").landmarks, poses.landmarks)


def test_tiny_empty_and_nobody_images(blazepose):
    model = blazepose()
    assert len(model(np.zeros((1, 1, 3), np.uint8))) == 0
    assert len(model(np.full((480, 640, 3), 128, np.uint8))) == 0
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert len(model(noise)) == 0
    with pytest.raises(ImageError, match="empty"):
        model(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ImageError, match="unsupported image encoding"):
        model(np.zeros((4, 4, 3), np.uint8), "yuv422")
    with pytest.raises(ImageError, match="3 channel"):
        model(np.zeros((4, 4, 4), np.uint8), "rgb8")
    with pytest.raises(ImageError, match="uint8"):
        model(np.zeros((4, 4, 3), np.float32), "rgb8")


def test_8000_px_image_scales_the_result(frame, blazepose):
    big = np.zeros((6000, 8000, 3), np.uint8)
    big[:5760, :7680] = np.repeat(np.repeat(frame, 12, axis=0), 12, axis=1)
    model = blazepose()
    small, large = model(frame), model(big)
    assert len(large) == len(small) == 1
    d = np.linalg.norm((large.keypoints - 12 * small.keypoints)[0, skeleton.INPUT_INDEX].numpy(), axis=-1)
    # same pose, 12 times larger; the letterbox margins differ, so the crop and the result shift a little
    assert np.median(d) < 0.02 * float(large.rois[0, 2])


def test_landmark_crops_in_chunks_give_the_landmarks_of_one_batch(blazepose, monkeypatch):
    """The landmark model takes LANDMARK_BATCH crops per call (a large crowd in bounded memory)."""
    from abspose import detect2d

    group = read_rgb(data_path("images", "tue_people_recognition", "example_group_photo.jpg"))
    model = blazepose(detector="nanodet")
    whole = model(group)
    assert len(whole) >= 9
    monkeypatch.setattr(detect2d, "LANDMARK_BATCH", 2)
    chunked = model(group)
    torch.testing.assert_close(chunked.landmarks, whole.landmarks, atol=1e-2, rtol=0)  # px


def test_tracking_mode_reuses_rois_and_skips_the_detector(blazepose):
    model = blazepose(tracking=True, detect_every=100)
    frames = [read_rgb(data_path("rgbd", "tue_hero", "frames", f"{s}_rgb.png")) for s in TUE_FRAMES]
    first = model(frames[0])
    assert len(first) == 1 and bool(first.detected[0])
    again = model(frames[0])  # same image, ROI from the landmarks: no detector run
    assert len(again) == 1 and not bool(again.detected[0])
    d = np.linalg.norm((again.keypoints - first.keypoints)[0, skeleton.INPUT_INDEX].numpy(), axis=-1)
    assert np.median(d) < 0.03 * float(again.rois[0, 2])  # a different crop of the same person
    model.reset()
    assert bool(model(frames[1]).detected.all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(frame, blazepose):
    from abspose.detect2d import BlazePose, Options

    cpu = blazepose()(frame)
    gpu = BlazePose("cuda", options=Options(detector="blazepose"))(frame).cpu()
    assert len(gpu) == len(cpu)
    assert (gpu.landmarks - cpu.landmarks).abs().max() < 0.5


@pytest.mark.parametrize("border", ["zeros", "replicate"])
def test_exact_crops_are_opencv_warps(frame, border):
    """Rotated crops as mediapipe makes them (cv::boxPoints corners, warpPerspective, uint8), also off-image:
    equal but for positions on a 1/32-px rounding boundary, which OpenCV's matrix puts on the other side."""
    import cv2

    from abspose.detect2d import crop_rois

    rng = np.random.default_rng(1)
    rois = np.column_stack(
        [rng.uniform(-150, 800, 24), rng.uniform(-120, 600, 24), rng.uniform(5, 900, 24), rng.uniform(-3.5, 3.5, 24)]
    )
    ours = crop_rois(torch.from_numpy(frame).permute(2, 0, 1).float(), torch.from_numpy(rois), 256, border)
    dst = np.array([[0, 256], [0, 0], [256, 0], [256, 256]], np.float32)
    flag = cv2.BORDER_CONSTANT if border == "zeros" else cv2.BORDER_REPLICATE
    for roi, crop in zip(rois, ours, strict=True):
        (cx, cy, side, angle) = roi
        src = cv2.boxPoints(((cx, cy), (side, side), angle * 180 / np.pi)).astype(np.float32)
        ref = cv2.warpPerspective(
            frame,
            cv2.getPerspectiveTransform(src, dst),
            (256, 256),
            flags=cv2.INTER_LINEAR,
            borderMode=flag,
            borderValue=0,
        )
        diff = np.abs(crop.permute(1, 2, 0).numpy() - ref)
        # a 1/32-px shift changes a value by at most 255/32 at a black/white edge
        assert diff.max() <= 8 and (diff > 0).mean() < 5e-4, (roi, diff.max(), (diff > 0).mean())


def test_compiled_models_match_eager_as_the_batch_size_changes(frame, blazepose):
    """torch.compile: a static graph for the first batch size, one with a symbolic batch after (H, W static)."""
    from torch._dynamo.utils import counters

    from abspose.detect2d import BlazePose, Options
    from abspose.image import to_rgb_tensor

    eager = blazepose()
    compiled = BlazePose("cpu", compile=True, options=Options(detector="blazepose"))
    assert compiled.compiled and compiled.compile_error is None
    graphs = counters["stats"]["unique_graphs"]
    rgb = to_rgb_tensor(frame)
    rois, _ = eager.detect_people(rgb)
    torch.testing.assert_close(compiled.detect_people(rgb)[0], rois, atol=0.05, rtol=0)
    for n in (1, 3, 2):
        batch = rois[:1].expand(n, -1) + torch.linspace(-10, 10, n)[:, None] * torch.tensor([1.0, 0.5, 1.0, 0.01])
        ref, out = eager.landmarks(rgb, batch), compiled.landmarks(rgb, batch)
        assert (out["points"] - ref["points"]).abs().max() < 0.05, n
    compiled(frame)
    assert counters["stats"]["unique_graphs"] == graphs, "a real frame recompiled a model compiled at start-up"


def test_a_failing_compilation_falls_back_to_eager_models(frame, blazepose, monkeypatch):
    from abspose.detect2d import BlazePose, Options

    def no_compiler(model, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", no_compiler)
    model = BlazePose("cpu", compile=True, options=Options(detector="blazepose"))
    assert not model.compiled and "no C++ compiler" in model.compile_error
    torch.testing.assert_close(model(frame).landmarks, blazepose()(frame).landmarks)


def test_opencv_and_torch_crops_give_the_same_people(frame, blazepose):
    """On a CPU the crops come from OpenCV itself (mediapipe's CPU crop); the batched torch warp, used on
    other devices, gives the same landmarks. Bad ROIs (NaN, empty, far away) give black crops, no pose."""
    from abspose.detect2d import crop_rois_opencv
    from abspose.image import to_rgb_tensor

    opencv, torch_warp = blazepose(), blazepose(opencv_crops=False)
    assert opencv.opencv_crops and not torch_warp.opencv_crops
    a, b = opencv(frame), torch_warp(frame)
    assert len(a) == len(b) >= 1
    assert (a.landmarks - b.landmarks).abs().max() < 0.1
    bad = torch.tensor([[float("nan"), 10, 100, 0], [10, 10, 0, 0], [1e30, 0, 100, 0], [100, 100, 50, float("inf")]])
    assert crop_rois_opencv(frame, bad, 256, "replicate").abs().max() == 0
    assert (opencv.landmarks(to_rgb_tensor(frame), bad)["flag"] < 0.5).all()
    # the caller's uint8 frame, passed along (as __call__ does), crops exactly as the converted tensor does
    rgb = to_rgb_tensor(frame)
    rois, _ = opencv.detect_people(rgb, frame)
    torch.testing.assert_close(rois, opencv.detect_people(rgb)[0], atol=0, rtol=0)
    same = {"atol": 0, "rtol": 0, "equal_nan": True}  # on_person is NaN: not checked
    torch.testing.assert_close(opencv.landmarks(rgb, rois, frame), opencv.landmarks(rgb, rois), **same)


def _standing(x: float) -> torch.Tensor:
    """[33,2] BlazePose landmarks of an upright person centred at column ``x``: head at y 40-60, shoulders 80,
    hips 140, ankles 260 (pixels)."""
    pts = torch.zeros(33, 2)
    pts[:11] = torch.stack([torch.linspace(-8, 8, 11), torch.linspace(40, 60, 11)], -1)
    side = torch.tensor([-12.0, 12.0])
    for first, y in ((11, 80), (13, 110), (15, 135), (17, 140), (19, 142), (21, 140), (23, 140), (25, 200)):
        pts[first : first + 2] = torch.stack([side, torch.full((2,), float(y))], -1)
    pts[27:33] = torch.stack([side.repeat(3), torch.tensor([260.0, 260, 265, 265, 270, 270])], -1)
    return pts + torch.tensor([x, 0.0])


def test_a_squeezed_copy_of_a_person_is_one_person_with_them():
    """A second landmark pass on part of a person keeps that person's head but squeezes the legs into its
    smaller box: it overlaps the whole skeleton by IoU < 0.5 and shares few landmarks, so only the head rule
    joins them; a neighbour one torso length away stays a person."""
    from abspose.detect2d import Options, _keypoint_boxes, _unique

    whole, neighbour = _standing(100), _standing(160)
    copy = whole.clone()
    copy[11:, 1] = 80 + (copy[11:, 1] - 80) * 0.35  # legs drawn into the upper half
    copy += 1.5  # not the same pixels
    points = torch.stack([whole, copy, neighbour])
    boxes = _keypoint_boxes(points, torch.ones(3, 33))
    score, alive = torch.tensor([0.9, 0.95, 0.8]), torch.ones(3, dtype=torch.bool)
    o = Options()
    assert _unique(boxes, points, score, alive, o.duplicate_iou, o.duplicate_share, 0.0).tolist() == [1, 1, 1]
    kept = _unique(boxes, points, score, alive, o.duplicate_iou, o.duplicate_share, o.duplicate_head)
    assert kept.tolist() == [0, 1, 1]  # the better-scored of the two copies, and the neighbour
    assert _unique(boxes, points, score, torch.tensor([True, False, True]), 0.5, 0.4, 0.15).tolist() == [1, 0, 1]


def test_a_doubtful_skeleton_inside_surer_people_is_dropped():
    """Made of other people's parts: a skeleton from a weak person box lying inside the union of surer
    skeletons' boxes; a weak one mostly outside them, or a sure one inside, stays."""
    from abspose.detect2d import _enclosed

    boxes = torch.tensor(
        [[0, 0, 100, 200], [100, 0, 200, 200], [60, 20, 140, 150], [150, 20, 260, 150], [10, 10, 90, 190.0]]
    )
    score = torch.tensor([0.8, 0.7, 0.3, 0.3, 0.6])
    alive = torch.ones(5, dtype=torch.bool)
    assert _enclosed(boxes, score, alive, 0.45, 0.9).tolist() == [0, 0, 1, 0, 0]
    alive[1] = False  # the neighbour it straddled is gone: half of it is uncovered
    assert _enclosed(boxes, score, alive, 0.45, 0.9).tolist() == [0, 0, 0, 0, 0]
    # a weak copy with the very box of a surer skeleton lies wholly inside it (edges included)
    same = torch.tensor([[0, 0, 100, 200], [0, 0, 100, 200.0]])
    assert _enclosed(same, torch.tensor([0.8, 0.3]), torch.ones(2, dtype=torch.bool), 0.45, 1.0).tolist() == [0, 1]
    # one whose right 15 % sticks out of it: 7 of the 8 columns of points covered, 0.875 < 0.9
    out = torch.tensor([[0, 0, 85, 200], [0, 0, 100, 200.0]])
    assert _enclosed(out, torch.tensor([0.8, 0.3]), torch.ones(2, dtype=torch.bool), 0.45, 0.9).tolist() == [0, 0]
    assert _enclosed(out, torch.tensor([0.8, 0.3]), torch.ones(2, dtype=torch.bool), 0.45, 0.85).tolist() == [0, 1]


def test_a_doubtful_copy_of_a_sure_persons_head_is_dropped():
    """A skeleton from a weak person box whose head lies on a surely boxed person's head (within a quarter of
    the torso length: TU/e frames, a second skeleton stretched from a seated person's head over the chair) is
    that person's copy; a weak one a head's width away (a person behind), a weak one on another weak
    one's head, and a sure one on a sure one's head stay (those are the other rules' cases)."""
    from abspose.detect2d import Options, _head_copies

    sure, copy, behind = _standing(100), _standing(104), _standing(125)  # torso 60 px: 4 and 25 px apart
    copy[25:, 1] += 40  # legs stretched down from the same head and trunk
    points = torch.stack([sure, copy, behind])
    alive = torch.ones(3, dtype=torch.bool)
    head = Options().doubtful_head
    assert _head_copies(points, torch.tensor([0.7, 0.4, 0.4]), alive, 0.45, head).tolist() == [0, 1, 0]
    assert _head_copies(points, torch.tensor([0.4, 0.35, 0.4]), alive, 0.45, head).tolist() == [0, 0, 0]
    assert _head_copies(points, torch.tensor([0.7, 0.6, 0.4]), alive, 0.45, head).tolist() == [0, 0, 0]
    gone = torch.tensor([False, True, True])  # the sure person was dropped by another rule: the copy stays
    assert _head_copies(points, torch.tensor([0.7, 0.4, 0.4]), gone, 0.45, head).tolist() == [0, 0, 0]


def test_a_thin_person_in_profile_passes_the_plausibility_gate():
    """The street video's walker at the left edge, seen side-on: a person box 44 x 128 px whose skeleton's
    keypoint box is 14 x 112 px (IoU 0.28 < 0.3): it lies in the box and spans its height, so it is that
    person. A skeleton stretched over three people, one squeezed into the box's top half, one sticking out of
    the box and one a quarter of the box's height are not."""
    from abspose.detect2d import Options, _on_box

    box = torch.tensor([454.0, 163, 498, 291])
    kp = torch.tensor(
        [
            [472.0, 171, 486, 283],  # the thin walker
            [420.0, 160, 600, 300],  # over three people
            [470.0, 165, 490, 225],  # half the box's height
            [472.0, 150, 486, 330],  # sticks out above and below
            [440.0, 165, 510, 195],  # a quarter of the height, wider than the box
            [458.0, 165, 494, 289],  # an ordinary skeleton (IoU 0.79)
        ]
    )
    o = Options()
    got = _on_box(kp, box.expand(len(kp), 4), o.min_box_iou, o.min_box_span)
    assert got.tolist() == [1, 0, 0, 0, 0, 1]
    assert not _on_box(kp[:1], box[None], o.min_box_iou, 2.0).item()  # the IoU alone drops the walker


def test_limb_coverage_is_the_visible_limbs_share_on_the_person_mask():
    """A mask whose left half is the person (1) and right half not (0): a skeleton drawn in the left half lies
    on it (1.0), one in the right half off it (0.0); one whose left elbow, wrist, knee and ankle lie in the
    right half (of the twelve segments 8 on it, 2 crossing the middle, 2 off) about 3/4 when those limbs are
    seen, 1.0 when they are hidden (a limb behind a chair is not expected on the person's pixels)."""
    from abspose.detect2d import LIMB_LANDMARKS, limb_coverage

    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :32] = 1.0
    left = torch.full((39, 2), 0.25)
    left[:, 1] = torch.linspace(0.1, 0.9, 39)
    right = left + torch.tensor([0.5, 0.0])
    reaching = left.clone()
    reaching[[13, 15, 25, 27], 0] = 0.75  # left elbow, wrist, knee, ankle: their segments cross the middle
    points = torch.stack([left, right, reaching])
    seen = torch.ones(3, 39)
    cover = limb_coverage(mask.expand(3, -1, -1, -1), points, seen)
    crossing = sum(1 for a, b in LIMB_LANDMARKS if {a, b} & {13, 15, 25, 27})
    assert crossing == 4
    # a segment from 0.25 to 0.75 samples 9 points: 4 left of the middle, the middle one (x = 0.5) at the mask's
    # edge (bilinear: 0.5), 4 right of it; a segment from 0.75 to 0.75 lies wholly off the person
    half = (4 + 0.5) / 9
    expected = (8 + 2 * half + 2 * 0.0) / 12
    torch.testing.assert_close(cover, torch.tensor([1.0, 0.0, expected]))
    hidden = seen.clone()
    hidden[2, [13, 15, 25, 27]] = 0.0
    torch.testing.assert_close(limb_coverage(mask.expand(3, -1, -1, -1), points, hidden)[2], torch.tensor(1.0))
    # the mask is read where the landmarks are, in fractions of the crop: pixel i spans i/S..(i+1)/S, so a
    # skeleton drawn down the middle of a 4-px mask's first column reads that column alone
    column = torch.zeros(1, 1, 4, 4)
    column[..., 0] = 1.0
    on_it = torch.stack([torch.full((39,), 0.125), torch.linspace(0.125, 0.875, 39)], -1)
    torch.testing.assert_close(limb_coverage(column, on_it[None], torch.ones(1, 39)), torch.tensor([1.0]))


def test_the_rows_checked_against_the_person_mask_keep_their_landmarks(blazepose):
    """The crops of doubtful person boxes go through the whole landmark graph (with its segmentation head),
    the others through the pruned one: every row gets the same landmarks either way, and only the checked rows
    an ``on_person`` share — high for the nine people of the group photo."""
    from abspose.image import to_rgb_tensor

    group = read_rgb(data_path("images", "tue_people_recognition", "example_group_photo.jpg"))
    model = blazepose(detector="nanodet")
    rgb = to_rgb_tensor(group, None, model.device)
    boxes, scores = model.person_boxes(rgb)
    rois = model.rois_from_boxes(boxes)
    checked = torch.arange(len(rois)) % 2 == 0
    plain = model.landmarks(rgb, rois, None, boxes)
    mixed = model.landmarks(rgb, rois, None, boxes, checked)
    torch.testing.assert_close(mixed["points"], plain["points"], atol=1e-2, rtol=0)  # px: batches of other sizes
    assert plain["on_person"].isnan().all() and mixed["on_person"][~checked].isnan().all()
    assert model.segmenter is not None  # the whole graph is loaded where the check is on, only there
    assert blazepose(detector="nanodet", person_mask=0.0).segmenter is None
    assert blazepose(detector="blazepose").segmenter is None  # mediapipe's pipeline: no person boxes to doubt
    everyone = model.landmarks(rgb, rois, None, boxes, torch.ones(len(rois), dtype=torch.bool))["on_person"]
    torch.testing.assert_close(everyone[checked], mixed["on_person"][checked], atol=1e-4, rtol=0)
    assert ((everyone > 0) & (everyone <= 1)).all()
    # the boxes NanoDet is sure of (>= 0.45) are people: their limbs lie on the mask (measured 0.83-1.0; the
    # box between the robot and the man beside it, 0.41: 0.45, dropped by the gate)
    sure = scores >= 0.45
    assert (everyone[sure] > 0.7).all() and int(sure.sum()) >= 8


def test_heatmap_refinement_is_the_confidence_weighted_cell_at_edges_and_inside():
    from abspose.detect2d import refine_with_heatmap

    heat = torch.full((1, 6, 64, 64), -20.0)  # sigmoid ~ 0: nothing
    heat[0, 0, 0, 0] = heat[0, 0, 0, 2] = 20.0  # keypoint 0: two sure cells on the crop's top row
    heat[0, 1, 10, 20] = heat[0, 1, 12, 20] = 20.0  # keypoint 1: two cells in a column inside
    heat[0, 2, 20, 0] = heat[0, 2, 22, 1] = 20.0  # keypoint 2: in the crop's first column
    heat[0, 3, 63, 63] = heat[0, 3, 62, 63] = 20.0  # keypoint 3: at the bottom-right corner
    heat[0, 5] = -5.0  # keypoint 5: a heatmap nowhere above sigmoid(-5) = 0.007
    xy = torch.tensor([[[1.5, 0.5], [20.5, 11.5], [0.5, 21.5], [63.5, 63.5], [-3.0, 10.0], [30.5, 30.5]]]) / 64
    out = refine_with_heatmap(xy, heat, kernel=3, min_conf=0.5)
    # the window's mean cell, in crop fractions
    expected = torch.tensor([[[1.0, 0.0], [20.0, 11.0], [0.5, 21.0], [63.0, 62.5]]]) / 64
    torch.testing.assert_close(out[:, :4], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, 4:], xy[:, 4:])  # outside the crop, or no cell sure enough: unchanged


def test_detector_rois_near_a_tracked_person_are_not_new_people():
    from abspose.detect2d import _match_boxes, _untracked

    tracked = torch.tensor([[100.0, 100.0, 80.0, 0.0], [300.0, 100.0, 80.0, 0.0]])  # cx, cy, side, angle
    near, far = torch.tensor([[120.0, 110.0, 90.0, 0.1]]), torch.tensor([[200.0, 100.0, 80.0, 0.0]])
    assert _untracked(near, tracked).tolist() == [False]  # 22 px from a tracked centre, within half its side
    assert _untracked(far, tracked).tolist() == [True]  # 100 px from both
    assert _untracked(torch.cat([far, near]), tracked).tolist() == [True, False]
    assert _untracked(near, tracked[:1]).tolist() == [False]  # one person tracked
    assert _untracked(near, tracked[:0]).tolist() == [True]  # nobody tracked: every ROI is new
    # tracked keypoint boxes take the person box of largest total overlap, none below the threshold
    kp = torch.tensor([[0.0, 0.0, 10.0, 20.0], [50.0, 0.0, 60.0, 20.0], [200.0, 0.0, 210.0, 20.0]])
    new = torch.tensor([[51.0, 1.0, 61.0, 21.0], [0.0, 2.0, 10.0, 22.0], [0.0, 0.0, 30.0, 60.0]])
    assert _match_boxes(kp, new, 0.5).tolist() == [1, 0, -1]
    assert _match_boxes(kp, new, 0.95).tolist() == [-1, -1, -1]
    assert _match_boxes(kp[:0], new, 0.5).tolist() == [] and _match_boxes(kp, new[:0], 0.5).tolist() == [-1] * 3


def test_keypoint_boxes_enclose_the_visible_landmarks_or_all_when_few_are_seen():
    from abspose.detect2d import _keypoint_boxes

    points = _standing(100)[None].repeat(2, 1, 1)  # [2, 33, 2]
    vis = torch.zeros(2, 33)
    vis[0, [11, 12, 23, 24]] = 0.9  # four landmarks seen: the box is theirs (the torso)
    vis[1, [11, 12, 23]] = 0.9  # three: too few to trust, the box is every landmark's
    box = _keypoint_boxes(points, vis)
    torso = points[0, [11, 12, 23, 24]]
    torch.testing.assert_close(box[0], torch.cat([torso.amin(0), torso.amax(0)]))
    torch.testing.assert_close(box[1], torch.cat([points[1].amin(0), points[1].amax(0)]))
