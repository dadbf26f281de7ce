"""2D overlays: bones in the person's colour, joints as white dots, nothing for unusable keypoints."""

import numpy as np

from abspose import skeleton as sk
from abspose.overlay import PALETTE, draw_people, draw_skeletons
from abspose.ros.outputs import Person


def person_keypoints(x0: float) -> np.ndarray:
    """A stick figure's 18 keypoints (px), NaN for the spine (no detector sees it), left edge at x0."""
    kp = np.full((sk.NUM_JOINTS, 2), np.nan)
    rows = {"head": 20, "neck": 40, "shoulder": 40, "elbow": 70, "wrist": 100, "pelvis": 110, "hip": 110}
    rows |= {"knee": 150, "ankle": 190, "foot": 195}
    for j, name in enumerate(sk.JOINT_NAMES):
        kind = name.split("_")[-1]
        if kind in rows:
            side = -15 if name.startswith("left") else 15 if name.startswith("right") else 0
            kp[j] = [x0 + 40 + side, rows[kind]]
    return kp


def test_bones_joints_and_colours_are_drawn_where_the_keypoints_are():
    img = np.zeros((220, 200, 3), np.uint8)
    kp = np.stack([person_keypoints(0), person_keypoints(100)])
    conf = np.ones((2, sk.NUM_JOINTS))
    out = np.asarray(draw_skeletons(img, kp, conf))
    assert out.shape == img.shape and not img.any()  # the input is left as it was
    head = kp[0, sk.JOINT_INDEX["head"]].astype(int)
    assert (out[head[1], head[0]] == 255).all()  # a white joint dot
    knee, ankle = kp[1, sk.JOINT_INDEX["left_knee"]], kp[1, sk.JOINT_INDEX["left_ankle"]]
    mid = ((knee + ankle) / 2).astype(int)
    assert tuple(out[mid[1], mid[0]]) == PALETTE[1]  # the second person's bone in the second colour
    knee0, ankle0 = kp[0, sk.JOINT_INDEX["left_knee"]], kp[0, sk.JOINT_INDEX["left_ankle"]]
    mid0 = ((knee0 + ankle0) / 2).astype(int)
    assert tuple(out[mid0[1], mid0[0]]) == PALETTE[0]
    assert not out[:, 190:].any() and not out[205:].any()  # nothing drawn away from the people


def test_low_confidence_and_nan_keypoints_are_not_drawn():
    img = np.zeros((220, 120, 3), np.uint8)
    kp = person_keypoints(0)[None]
    conf = np.ones((1, sk.NUM_JOINTS))
    legs = [sk.JOINT_INDEX[n] for n in sk.JOINT_NAMES if n.split("_")[-1] in ("knee", "ankle", "foot")]
    conf[0, legs] = 0.2
    out = np.asarray(draw_skeletons(img, kp, conf, min_confidence=0.5))
    assert out[:115].any() and not out[130:].any()  # hips drawn, legs below them not
    none = np.asarray(draw_skeletons(img, np.full_like(kp, np.nan), conf))
    assert not none.any()


def test_draw_people_labels_seen_people_and_leaves_out_coasting_ones():
    img = np.zeros((220, 200, 3), np.uint8)
    j = np.zeros((sk.NUM_JOINTS, 3))
    u = np.full(sk.NUM_JOINTS, 0.05)
    src = np.full(sk.NUM_JOINTS, 2, np.uint8)
    seen = Person("p1", 1, 1, 0.9, np.array([0, 0, 2.0]), np.zeros(3), j, u, src, person_keypoints(0), np.ones(18))
    coasting = Person("p2", 2, 2, 0.9, np.zeros(3), np.zeros(3), j, u, src, np.full((18, 2), np.nan), np.zeros(18))
    out = draw_people(img, [seen, coasting])
    alone = draw_people(img, [seen])
    np.testing.assert_array_equal(out, alone)  # the coasting person adds nothing
    assert out[:, :100].any() and not out[:, 110:].any()


def test_an_rgba_image_is_drawn_on_its_colour_channels():
    rgba = np.zeros((60, 80, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 40, 255
    out = draw_skeletons(rgba, np.full((1, sk.NUM_JOINTS, 2), np.nan), np.zeros((1, sk.NUM_JOINTS)))
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), rgba[..., :3])
