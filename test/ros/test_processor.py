"""One frame from real ROS messages (the TU/e bag) to output messages, and every kind of bad input."""

import dataclasses
import time

import numpy as np
import pytest

from abspose import skeleton as sk
from abspose.ros.messages import MessageTypes
from abspose.ros.processor import FrameError

T = MessageTypes.rosbags()
# What consumers read: the message's constants, not the Python ones (test_messages ties the two together)
Skeleton = T["abspose_ros/msg/Skeleton"]
SOURCE_INVALID, SOURCE_LIFTED, SOURCE_FUSED = Skeleton.SOURCE_INVALID, Skeleton.SOURCE_LIFTED, Skeleton.SOURCE_FUSED
CONFIRMED, COASTING = Skeleton.TRACK_CONFIRMED, Skeleton.TRACK_COASTING


def test_real_frame_gives_a_confirmed_person_with_all_outputs(bag_frame, make):
    image, info, depth = bag_frame
    proc = make()
    start = time.perf_counter()
    result = proc.process(image, info, depth)
    assert 0.001 < result.seconds <= time.perf_counter() - start  # the frame's own processing time
    assert result.warnings == []
    assert result.frame_id == image.header.frame_id == result.skeletons.header.frame_id
    assert result.skeletons.header.stamp == image.header.stamp
    near = min(result.people, key=lambda p: p.root[2])
    assert near.state == CONFIRMED and 1.6 < near.root[2] < 2.1
    assert (near.source == SOURCE_FUSED).sum() >= 8
    published = next(s for s in result.skeletons.skeletons if s.id == near.id)
    np.testing.assert_array_equal(published.joint_source, near.source)
    assert [t.child_frame_id for t in result.tf] == [f"body_{p.id}" for p in result.people]
    for msg in (result.skeletons, result.markers, result.tf[0]):
        T.store.serialize_cdr(msg, msg.__msgtype__)  # valid ROS 2 messages


def test_depth_problems_fall_back_to_monocular(bag_frame, make):
    image, info, depth = bag_frame
    proc = make()
    holes = dataclasses.replace(depth, data=np.full_like(depth.data, 255))  # 32FC1 NaN everywhere
    result = proc.process(image, info, holes)
    near = min(result.people, key=lambda p: p.root[2])
    assert set(np.unique(near.source)) <= {SOURCE_LIFTED, SOURCE_INVALID} and (near.source == SOURCE_LIFTED).sum() > 8
    small = dataclasses.replace(depth, height=240, step=depth.step, data=depth.data[: depth.step * 240])
    result = proc.process(image, info, small)
    assert any("depth ignored" in w and "give the depth CameraInfo" in w for w in result.warnings)
    assert len(result.people) >= 1
    # a depth image of another size whose CameraInfo has the colour size: the depth stream is named, the
    # frame runs monocular (it used to be skipped whole)
    result = proc.process(image, info, small, info)
    assert any("depth stream" in w and "640x240" in w for w in result.warnings), result.warnings
    assert len(result.people) >= 1
    odd = dataclasses.replace(depth, encoding="64FC1")
    result = proc.process(image, info, odd)
    assert result.warnings and "unsupported depth encoding '64FC1'" in result.warnings[0]
    assert len(result.people) >= 1
    # implausible readings (a 32FC1 image of 1e30 m once crashed the torso-plane fit) are invalid: monocular
    huge = dataclasses.replace(depth, data=np.full(depth.data.size // 4, 1e30, np.float32).view(np.uint8))
    result = proc.process(image, info, huge)
    near = min(result.people, key=lambda p: p.root[2])
    assert set(np.unique(near.source)) <= {SOURCE_LIFTED, SOURCE_INVALID} and 1.0 < near.root[2] < 3.0


def restamp(msg, sec: int, nanosec: int):
    return dataclasses.replace(
        msg,
        header=dataclasses.replace(msg.header, stamp=T.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)),
    )


def reframe(msg, frame_id: str):
    return dataclasses.replace(msg, header=dataclasses.replace(msg.header, frame_id=frame_id))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda im, ci: (im, None), "no colour CameraInfo"),
        (lambda im, ci: (im, dataclasses.replace(ci, k=np.zeros(9))), "CameraInfo unusable"),
        (lambda im, ci: (dataclasses.replace(im, step=100), ci), "step 100 is smaller"),
        (lambda im, ci: (dataclasses.replace(im, encoding="yuv422"), ci), "unsupported image encoding 'yuv422'"),
        (lambda im, ci: (dataclasses.replace(im, data=im.data[:1000]), ci), "truncated"),
        (lambda im, ci: (im, dataclasses.replace(ci, width=1280, height=960)), "1280x960"),
        (lambda im, ci: (restamp(im, 5, 1_000_000_000), ci), "nanosec 1000000000 is not in"),
        (lambda im, ci: (restamp(im, 2**31, 0), ci), "does not fit a ROS 2 time"),
        (lambda im, ci: (reframe(im, ""), ci), "frame_id is empty"),
        (lambda im, ci: (reframe(im, "body_p1"), ci), "'body_p1' is a frame this node publishes"),
        (lambda im, ci: (reframe(im, "left_wrist_p3"), ci), "'left_wrist_p3' is a frame this node publishes"),
        (lambda im, ci: (dataclasses.replace(im, height=1, step=2**32 - 1), ci), "image is 640x1 but its CameraInfo"),
    ],
)
def test_bad_frames_are_skipped_with_the_reason(bag_frame, make, change, message):
    image, info, _ = bag_frame
    image, info = change(image, info)
    with pytest.raises(FrameError, match=message):
        make(use_depth=False).process(image, info)


def test_tracks_keep_ids_over_a_repeated_frame_and_end_after_max_age(bag_frame, make):
    image, info, _ = bag_frame
    proc = make(**{"tracking.max_age": 0.5})
    ids = []
    for k in range(3):
        stamp = T.make("builtin_interfaces/msg/Time", sec=100, nanosec=k * 100_000_000)
        im = dataclasses.replace(image, header=dataclasses.replace(image.header, stamp=stamp))
        ids.append({p.id for p in proc.process(im, info, None).people})
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) >= 1
    later = dataclasses.replace(
        image, header=dataclasses.replace(image.header, stamp=T.make("builtin_interfaces/msg/Time", sec=105, nanosec=0))
    )
    last = {p.id: p.root for p in proc.process(restamp(image, 100, 300_000_000), info, None).people}
    result = proc.process(later, info, None)
    ended = [p for p in result.people if p.state == 3]
    assert {p.id for p in ended} == ids[0]  # the old track ends ...
    for p in ended:  # ... published where it was last seen, not extrapolated over the 4.7 s gap
        np.testing.assert_allclose(p.root, last[p.id])
    assert not ({p.id for p in result.people if p.state != 3} & ids[0])  # ... and its id is not reused
    names = {m.ns for m in result.markers.markers if m.action == m.DELETE}
    assert names == {"bones", "joints", "labels"}
    assert len(sk.JOINT_NAMES) == len(result.skeletons.skeletons[0].joints)


def test_person_coasts_through_an_empty_frame(bag_frame, make):
    image, info, _ = bag_frame
    proc = make()
    first = proc.process(image, info)
    near = min(first.people, key=lambda p: p.root[2])
    later = T.make("builtin_interfaces/msg/Time", sec=image.header.stamp.sec, nanosec=image.header.stamp.nanosec)
    later.nanosec = (later.nanosec + 200_000_000) % 1_000_000_000
    later.sec += 1 if image.header.stamp.nanosec + 200_000_000 >= 1_000_000_000 else 0
    black = dataclasses.replace(
        image, data=np.zeros_like(image.data), header=dataclasses.replace(image.header, stamp=later)
    )
    result = proc.process(black, info)
    coasting = {p.id: p for p in result.people if p.state == COASTING}
    assert near.id in coasting
    p = coasting[near.id]
    assert np.isnan(p.keypoints).all() and (p.confidence == 0).all()
    np.testing.assert_allclose(p.uncertainty, near.uncertainty + 0.5 * 0.2, rtol=1e-6)
    assert {m.ns for m in result.markers.markers if m.id == p.number} == {"bones", "joints", "labels"}
    published = {t.child_frame_id for t in result.tf}
    assert f"body_{p.id}" in published and published <= {f"body_{q}" for q in coasting}  # only coasting people


def shifted(image, dx: int, seconds: float):
    """The real frame with its content moved dx px to the right, stamped ``seconds`` later: a walking person."""
    pixels = np.asarray(image.data).reshape(image.height, image.step)
    moved = np.roll(pixels.reshape(image.height, image.width, -1), dx, axis=1).reshape(-1)
    ns = image.header.stamp.sec * 10**9 + image.header.stamp.nanosec + round(seconds * 1e9)
    return dataclasses.replace(restamp(image, ns // 10**9, ns % 10**9), data=np.ascontiguousarray(moved))


def test_coasting_moves_on_and_an_ended_track_stays_where_it_was_last_seen(bag_frame, make):
    image, info, _ = bag_frame
    proc = make(**{"tracking.max_age": 0.5, "use_depth": False})
    assert proc.device == "cpu"
    for k in range(6):  # walking sideways: 12 px per 0.1 s
        last = proc.process(shifted(image, 12 * k, 0.1 * k), info)
    (person,) = [p for p in last.people if p.state == CONFIRMED and p.root[2] < 3.0]
    assert np.linalg.norm(person.velocity) > 0.1
    black = dataclasses.replace(shifted(image, 0, 0.8), data=np.zeros_like(image.data))
    coasting = next(p for p in proc.process(black, info).people if p.id == person.id)
    assert coasting.state == COASTING and np.linalg.norm(coasting.root - person.root) > 0.02  # carried on
    gone = dataclasses.replace(shifted(image, 0, 2.0), data=np.zeros_like(image.data))
    ended = next(p for p in proc.process(gone, info).people if p.id == person.id)
    assert ended.state == Skeleton.TRACK_ENDED
    np.testing.assert_allclose(ended.root, person.root)  # where it was last seen, not carried on


def test_marker_lifetime_is_published_exactly(bag_frame, make):
    image, info, _ = bag_frame
    result = make(**{"publish.marker_lifetime": 2.5, "use_depth": False}).process(image, info)
    assert {(m.lifetime.sec, m.lifetime.nanosec) for m in result.markers.markers} == {(2, 500_000_000)}


@pytest.mark.parametrize("gap", [40.0, -1.0])
def test_a_gap_in_the_stream_makes_the_detector_look_afresh(bag_frame, make, gap):
    """In tracking mode, people are re-cropped from the last frame's landmarks; after a gap longer than a
    track lives (or a stamp going back: a looped bag) those crops are stale, so the detector runs again."""
    image, info, _ = bag_frame

    def seen(result) -> int:
        return sum(p.state == CONFIRMED for p in result.people)

    moved = shifted(image, 200, gap)
    fresh = seen(make(use_depth=False).process(moved, info))
    proc = make(use_depth=False, **{"detector.reuse_rois": True})
    proc.process(image, info)
    assert seen(proc.process(moved, info)) == fresh >= 2
    proc = make(use_depth=False, **{"detector.reuse_rois": True})  # the same 200 px jump 33 ms later: tracked
    proc.process(image, info)
    assert seen(proc.process(shifted(image, 200, 0.033), info)) < fresh


def test_the_floor_comes_from_tf_then_the_parameters_then_a_fit_to_the_depth_image(bag_frame, make):
    """What each frame's floor came from (``FrameResult.ground``): the TU/e hall's shiny floor reads as holes,
    so its depth image gives none; a floor from TF wins; then ``ground.camera_height`` (here a low robot's
    camera, half a metre up); then a floor fitted to the depth image, which serves the frames of the next
    ``ground.refit_period`` seconds and is fitted again after them."""
    import math

    from abspose.camera import CameraModel
    from abspose.ground import GroundPlane

    from conftest import floor_depth_image

    image, info, depth = bag_frame
    proc = make(**{"ground.refit_period": 2.0})
    assert proc.process(restamp(image, 100, 0), info, restamp(depth, 100, 0)).ground == ""
    tf = GroundPlane.from_height_pitch(1.0, math.radians(15.0))
    assert proc.process(restamp(image, 100, 1), info, restamp(depth, 100, 1), ground=tf).ground == "tf"
    assert make(**{"ground.camera_height": 0.5}).process(image, info, depth).ground == "parameters"
    assert make(**{"ground.contact": False}).process(image, info, depth, ground=tf).ground == ""
    cam = CameraModel.pinhole(*info.k[[0, 4, 2, 5]], info.width, info.height)
    floor = floor_depth_image(GroundPlane.from_height_pitch(1.0, math.radians(20.0)), cam, np.random.default_rng(0))
    floor_msg = dataclasses.replace(depth, data=floor.numpy().view(np.uint8).reshape(-1))
    fitted = make(**{"ground.refit_period": 2.0})
    assert fitted.process(restamp(image, 100, 0), info, restamp(floor_msg, 100, 0)).ground == "depth"
    assert fitted.process(restamp(image, 101, 0), info, restamp(depth, 101, 0)).ground == "depth"  # kept
    assert fitted.process(restamp(image, 102, 500_000_000), info, restamp(depth, 102, 500_000_000)).ground == ""


def test_each_persons_scale_says_what_measured_it():
    """``scales``: the lifter alone, a ground contact, or depth (which wins where both placed the person)."""
    import torch

    from abspose.body_scale import LIFTER_ONLY, MEASURED_DEPTH, MEASURED_GROUND
    from abspose.fuse import SOURCE_DEPTH, SOURCE_FUSED, SOURCE_GROUND, SOURCE_LIFTED
    from abspose.pipeline import People
    from abspose.ros.processor import scales

    lifted, ground, fused, depth = SOURCE_LIFTED, SOURCE_GROUND, SOURCE_FUSED, SOURCE_DEPTH
    source = torch.tensor([[lifted] * 3, [lifted, ground, lifted], [fused, lifted, lifted], [depth, ground, lifted]])
    n = len(source)
    people = People(
        *(torch.zeros(n, 3, 2), torch.ones(n, 3), torch.ones(n), torch.zeros(n, 3, 3), torch.zeros(n, 3)),
        source=source,
        root=torch.zeros(n, 3),
        depth=torch.zeros(n, 3),
        scale=torch.tensor([1.0, 1.1, 0.9, 1.2]),
        scale_sigma=torch.tensor([0.08, 0.03, 0.01, 0.02]),
    )
    got = scales(people)
    assert got[:, 2].tolist() == [LIFTER_ONLY, MEASURED_GROUND, MEASURED_DEPTH, MEASURED_DEPTH]
    np.testing.assert_allclose(got[:, :2], [[1.0, 0.08], [1.1, 0.03], [0.9, 0.01], [1.2, 0.02]], rtol=1e-6)
