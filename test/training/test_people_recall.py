"""People found on the hand-labelled real images (test/fixtures/person_boxes.json), and the scoring rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from abspose.training.people_recall import Labels, Score, load_labels, mosaic, read_labelled_image, score_image

from conftest import darkened, data_path, with_lamp

THREE = np.array([[0, 0, 50, 200], [60, 0, 110, 200], [120, 0, 170, 200]], np.float64)


NONE = np.zeros((0, 4))


def _labels(visible=THREE, partial=NONE, objects=NONE, min_height=0.0) -> Labels:
    return Labels("x", "x.png", None, visible, partial, objects, min_height)


def test_mosaic_moves_each_image_s_labels_with_it():
    a = _labels(visible=np.array([[1.0, 2, 5, 9]]))
    b = _labels(visible=np.zeros((0, 4)), partial=np.array([[0.0, 0, 4, 4]]))
    img_a, img_b = np.full((10, 20, 3), 1, np.uint8), np.full((10, 20, 3), 2, np.uint8)
    grid, labels = mosaic([(a, img_a), (b, img_b)], 2)  # a b / a b: cycled
    assert grid.shape == (20, 40, 3) and grid[0, 0, 0] == 1 and grid[0, 20, 0] == 2 and grid[10, 0, 0] == 1
    assert labels.visible.tolist() == [[1, 2, 5, 9], [1, 12, 5, 19]]
    assert labels.partial.tolist() == [[20, 0, 24, 4], [20, 10, 24, 14]]
    with pytest.raises(ValueError, match="not the size"):
        mosaic([(a, img_a), (b, np.zeros((11, 20, 3), np.uint8))], 2)


def test_scoring_rule():
    s = score_image(_labels(), np.array([[2, 5, 48, 195], [0, 0, 170, 200]]), (400, 400))
    # one good skeleton; one phantom stretched across the three people matches none
    assert (s.found, s.visible, s.correct, s.detections) == (1, 3, 1, 2) and s.false["x"] == [1]
    # a skeleton of the upper half of a person (legs unseen) is that person; a quarter of one is not
    s = score_image(_labels(), np.array([[62, 2, 108, 100], [122, 2, 168, 45]]), (400, 400))
    assert s.found == 1 and s.missed["x"] == [0, 2]
    # one to one: two skeletons on one person give one hit and one false positive
    s = score_image(_labels(), np.array([[2, 5, 48, 195], [0, 0, 50, 190]]), (400, 400))
    assert (s.found, s.correct, s.detections) == (1, 1, 2)
    # partial labels may be found without counting against recall; objects count as false
    s = score_image(
        _labels(partial=np.array([[200, 0, 240, 100.0]]), objects=np.array([[300, 0, 380, 300.0]])),
        np.array([[201, 2, 239, 98], [305, 5, 375, 290]]),
        (400, 400),
    )
    assert (s.found, s.visible, s.correct, s.detections, s.on_objects) == (0, 3, 1, 2, 1)
    # a skeleton on a partly hidden person covers its visible part and the legs the model drew behind the
    # chairs; the same skeleton on a fully visible person's box of that size is not that person
    head_and_back = np.array([[200, 0, 240, 60.0]])
    drawn = np.array([[202, 8, 242, 150.0]])
    assert score_image(_labels(partial=head_and_back), drawn, (400, 400)).correct == 1
    assert score_image(_labels(visible=head_and_back), drawn, (400, 400)).correct == 0
    # small skeletons are not scored where only tall people are labelled; boxes are clipped to the image
    s = score_image(_labels(min_height=80), np.array([[300, 0, 310, 40], [0, -50, 50, 260]]), (200, 400))
    assert (s.found, s.detections) == (1, 1)
    # nobody found: every labelled person missed, no detection, no false one
    s = score_image(_labels(), np.zeros((0, 4)), (400, 400))
    assert (s.found, s.visible, s.detections, s.correct, s.false["x"]) == (0, 3, 0, 0, [])


def _run(model, labels, data):
    from abspose.detect2d import _keypoint_boxes

    img = read_labelled_image(labels, data)
    model.reset()
    poses = model(img)
    return score_image(labels, _keypoint_boxes(poses.landmarks, poses.visibility).numpy(), img.shape[:2])


def test_people_found_on_the_labelled_real_images(blazepose):
    data = data_path("images").parent  # skips without the shared data
    ours, mediapipe = blazepose(), blazepose(detector="blazepose")
    total, base, groups = Score(), Score(), {}
    for labels in load_labels():
        s = _run(ours, labels, data)
        total.add(s)
        base.add(_run(mediapipe, labels, data))
        groups.setdefault(labels.key.split("_")[0], Score()).add(s)
    # measured (this CPU): 59/60 people found, 64 of 67 skeletons on a labelled person (64 of 68 without the
    # person-mask check, 64 of 70 without it and the doubtful-head rule, 64 of 78 without these and the head and
    # enclosed rules of the duplicate removal; the same images ±1 grey level: 62-63 of 68-70); BlazePose's own
    # detector (the mediapipe pipeline) finds 16/60
    assert base.recall < 0.4 and total.recall >= 0.95 and total.recall >= 2.5 * base.recall
    assert groups["group"].found == 9 and groups["group"].on_objects == 0  # all 9 people, none on a robot ...
    # ... and no skeleton elsewhere either (the one drawn from the man's head down over the robot beside him is off
    # BlazePose's person mask)
    assert groups["group"].correct == groups["group"].detections == 9
    assert groups["street"].recall >= 0.95 and groups["tue"].recall >= 0.95  # pedestrians, seated and far people
    assert groups["mp"].recall == 1 and groups["coco"].recall == 1
    assert total.precision >= 0.9


def test_people_in_a_near_black_frame_are_found_once_it_is_stretched(blazepose):
    """The group photo at half a percent of its light (brightest grey level 15): the frame stretched to the
    full range finds everyone, without the stretch NanoDet and BlazePose find about half."""
    from abspose.detect2d import _keypoint_boxes

    data = data_path("images").parent
    labels = next(lab for lab in load_labels() if lab.key == "group")
    dark = darkened(read_labelled_image(labels, data), 0.005)
    found = {}
    for level in (0.0, 32.0):
        poses = blazepose(dark_level=level)(dark)
        found[level] = score_image(labels, _keypoint_boxes(poses.landmarks, poses.visibility).numpy(), dark.shape[:2])
    assert found[32.0].found == found[32.0].visible == 9 and found[32.0].on_objects == 0
    assert found[32.0].correct >= found[32.0].detections - 1
    assert found[0.0].found <= 6


def test_people_in_a_near_black_frame_with_a_lamp_are_found_by_a_second_stretched_look(blazepose):
    """The group photo at half a percent of its light with a lamp on 0.8 % of it (its 99.5th percentile white,
    its 95th grey level 11): not stretched as a whole, it gets a second, stretched look, and the people's crops,
    dark themselves, are stretched."""
    from abspose.detect2d import _keypoint_boxes
    from abspose.image import dark_levels, to_rgb_tensor

    data = data_path("images").parent
    labels = next(lab for lab in load_labels() if lab.key == "group")
    dark = with_lamp(darkened(read_labelled_image(labels, data), 0.005), 0.008, (0.5, 0.05))
    assert dark_levels(to_rgb_tensor(dark), 32.0)[2]  # lights
    found = {}
    for level in (0.0, 32.0):
        poses = blazepose(dark_level=level)(dark)
        found[level] = score_image(labels, _keypoint_boxes(poses.landmarks, poses.visibility).numpy(), dark.shape[:2])
    # measured: 9 of 9 (10 skeletons), 5 without; with the lamp at other places and sizes 7-9 against 3-5
    assert found[32.0].found >= 8 and found[32.0].on_objects == 0
    assert found[32.0].correct >= found[32.0].detections - 1
    assert found[0.0].found <= found[32.0].found - 3


def test_the_crops_of_people_in_the_dark_part_of_a_frame_with_lights_are_stretched(blazepose):
    """Each labelled person of the dark group photo with a lamp: their landmarks from the crops of the frame
    with lights are those from the frame stretched as a whole."""
    from abspose.image import dark_levels, stretch_levels, to_rgb_tensor

    data = data_path("images").parent
    labels = next(lab for lab in load_labels() if lab.key == "group")
    rgb = to_rgb_tensor(with_lamp(darkened(read_labelled_image(labels, data), 0.005), 0.008, (0.5, 0.05)))
    black, gain, _ = dark_levels(rgb, 32.0)
    model = blazepose()
    boxes = torch.tensor(labels.visible, dtype=torch.float32)
    rois = model.rois_from_boxes(boxes)
    stretched, _ = stretch_levels(rgb, None, black, gain)

    def points(image, lit=None):
        return model.landmarks(image, rois, None, boxes, None, lit)["points"]

    want = points(stretched)
    moved = (points(rgb, (stretched, None)) - want).norm(dim=-1).median(dim=1).values
    unstretched = (points(rgb) - want).norm(dim=-1).median(dim=1).values
    # measured: 0 px; from the frame's own crops 13-72 px
    assert float(moved.max()) < 0.5 and float(unstretched.median()) > 5.0


def _small_on_black(labels: Labels, img: np.ndarray, share: float) -> tuple[np.ndarray, Labels]:
    """The labelled image shrunk to ``share`` of a 1440 x 1080 frame of black (grey levels 2-6), in its middle;
    its labels moved with it."""
    import cv2

    h, w = 1080, 1440
    scale = np.sqrt(share * h * w / (img.shape[0] * img.shape[1]))
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.random.default_rng(0).integers(2, 7, size=(h, w, 3)).astype(np.uint8)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    at = np.array([x0, y0, x0, y0])
    return frame, Labels(
        "small", labels.path, None, labels.visible * scale + at, NONE, labels.objects * scale + at, 0.0
    )


def test_lit_people_in_a_dark_frame_are_not_lost_to_its_stretch(blazepose):
    """The group photo small (3 % of the frame) on black: the frame is dark with lights, the people are the
    lights. Stretched as a whole they would be blown out; the second look leaves the first, and their crops,
    bright themselves, as they are."""
    from abspose.detect2d import _keypoint_boxes
    from abspose.image import dark_levels, stretch_levels, to_rgb_tensor

    labels = next(lab for lab in load_labels() if lab.key == "group")
    frame, moved = _small_on_black(labels, read_labelled_image(labels, data_path("images").parent), 0.03)
    levels = dark_levels(to_rgb_tensor(frame), 32.0)
    assert levels[2]  # lights
    _, blown = stretch_levels(torch.from_numpy(frame).permute(2, 0, 1), frame, *levels[:2])

    def score(image, level):
        poses = blazepose(dark_level=level)(image)
        return score_image(moved, _keypoint_boxes(poses.landmarks, poses.visibility).numpy(), image.shape[:2])

    plain, looked = score(frame, 0.0), score(frame, 32.0)
    # measured: 7 of 9 both ways; 0 on the frame stretched whole
    assert looked.found == plain.found >= 6 and looked.on_objects == 0
    assert score(blown, 0.0).found <= 2


def test_a_frame_with_lights_takes_each_person_box_from_the_look_that_suits_its_place(blazepose):
    """The dark group photo with a lamp: every box from the stretched look (NanoDet's boxes on the dark frame as
    it is are dropped); the group small on black: every box of the frame as it is kept."""
    from abspose.image import dark_levels, stretch_levels, to_rgb_tensor

    labels = next(lab for lab in load_labels() if lab.key == "group")
    img = read_labelled_image(labels, data_path("images").parent)
    model = blazepose()
    for frame, want in (
        (with_lamp(darkened(img, 0.01), 0.008, (0.5, 0.05)), "lit"),
        (_small_on_black(labels, img, 0.03)[0], "as is"),
    ):
        rgb = to_rgb_tensor(frame)
        lit, _ = stretch_levels(rgb, None, *dark_levels(rgb, 32.0)[:2])
        looks = {"as is": model.person_boxes(rgb)[0], "lit": model.person_boxes(lit)[0]}
        boxes, _ = model._looked_twice(rgb, None, lit, None)
        taken = {name: sum(bool((b == boxes).all(-1).any()) for b in look) for name, look in looks.items()}
        # measured: 11 of the 11 stretched boxes and none of the 13 as is; 18 of 18 as is (and 4 of the stretched
        # look's, in the black around the photo)
        if want == "lit":
            assert taken["lit"] == len(boxes) >= 9 and len(looks["as is"]) >= 5 and taken["as is"] == 0
        else:
            assert taken["as is"] == len(looks["as is"]) >= 12 and taken["lit"] <= len(boxes) - 12


def test_tracking_mode_keeps_the_crowd_between_detector_runs(blazepose):
    """Each labelled image held for 5 frames (a still scene at camera rate): the 4 frames after the detector's
    re-crop everyone from their own landmarks, masked to where they were, and keep them."""
    from abspose.detect2d import _keypoint_boxes

    data = data_path("images").parent
    model, held = blazepose(tracking=True, detect_every=10), Score()
    for labels in load_labels():
        img = read_labelled_image(labels, data)
        model.reset()
        for k in range(5):
            poses = model(img)
            if k:
                held.add(score_image(labels, _keypoint_boxes(poses.landmarks, poses.visibility).numpy(), img.shape[:2]))
    # measured (this CPU): 223/240 found, 230 of 253 skeletons on a labelled person (222/240, 229 of 255 without
    # the person-mask check; 224/240, 235 of 272 without that and the head rule of the duplicate removal);
    # 186/240 when tracked crops were not masked and detections were matched to tracked people by centre distance
    assert held.recall >= 0.88 and held.precision >= 0.85


def test_tracking_mode_follows_walking_pedestrians(blazepose):
    """The street video: the detector on its first frame only, the walking pedestrians then tracked from
    their landmarks through the next 4 frames (every one ≥ 80 px tall is labelled in each)."""
    from abspose.detect2d import _keypoint_boxes

    data = data_path("images").parent
    model, tracked = blazepose(tracking=True, detect_every=10), Score()
    for labels in sorted((lab for lab in load_labels() if lab.key.startswith("street")), key=lambda lab: lab.frame):
        img = read_labelled_image(labels, data)
        poses = model(img)
        if labels.frame:
            tracked.add(score_image(labels, _keypoint_boxes(poses.landmarks, poses.visibility).numpy(), img.shape[:2]))
    # measured (this CPU): 20/20, 20 of 20 skeletons on a labelled pedestrian (16/20 when the enclosed rule
    # took anything 70 % inside surer people: it drops the walker half hidden behind another in frame 0);
    # 14/20 before tracked crops were masked to the person's last keypoint box
    assert tracked.visible == 20 and tracked.found >= 18 and tracked.precision >= 0.9


def test_labels_lie_inside_their_images():
    data = data_path("images").parent
    for labels in load_labels():
        img = read_labelled_image(labels, data)
        h, w = img.shape[:2]
        for boxes in (labels.visible, labels.partial, labels.objects):
            assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= [w, h]) & (boxes[:, 2:] > boxes[:, :2])).all(), labels.key
    # a frame past the end of the video, or a missing file, is an error naming the file
    street = next(lab for lab in load_labels() if lab.frame is not None)
    for bad in (
        dataclasses.replace(street, frame=10_000),
        dataclasses.replace(street, path="images/none.png", frame=None),
    ):
        with pytest.raises(OSError, match=str(data / bad.path)):
            read_labelled_image(bad, data)
