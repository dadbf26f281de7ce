"""People found on the hand-labelled real images (test/fixtures/person_boxes.json), and the scoring rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from abspose.training.people_recall import Labels, Score, load_labels, mosaic, read_labelled_image, score_image

from conftest import darkened, data_path

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
