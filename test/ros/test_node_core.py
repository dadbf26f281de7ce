"""The node's logic off ROS: real worker thread, real FrameProcessor, real TU/e bag messages.

The publishers are plain functions here (rclpy's are not installable); everything else is what the node runs.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import pytest

from abspose.fuse import SOURCE_FUSED, SOURCE_LIFTED
from abspose.ros import config
from abspose.ros.messages import MessageTypes
from abspose.ros.node_core import ACTIVE, ERROR, INACTIVE, OK, UNCONFIGURED, WARN, NodeCore, Outputs, Stats

T = MessageTypes.rosbags()


class Published:
    """The node's publishers as lists; ``fail`` makes the next publishes raise like a dead rclpy publisher."""

    def __init__(self) -> None:
        self.skeletons, self.markers, self.tf, self.debug = [], [], [], []
        self.fail = 0
        self.event = threading.Event()

    def _skeletons(self, msg) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("publisher's context is invalid")
        self.skeletons.append(msg)
        self.event.set()

    def outputs(self, debug: bool = False) -> Outputs:
        return Outputs(self._skeletons, self.markers.append, self.tf.append, self.debug.append if debug else None)


def stamped(msg, like, seconds: float = 0.0):
    """A copy of a rosbags message stamped ``seconds`` after the message ``like``."""
    ns = like.header.stamp.sec * 1_000_000_000 + like.header.stamp.nanosec + round(seconds * 1e9)
    stamp = dataclasses.replace(msg.header.stamp, sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return dataclasses.replace(msg, header=dataclasses.replace(msg.header, stamp=stamp))


@pytest.fixture
def node(make):
    """An active NodeCore on a shared real processor; its log lines in ``core.lines``."""
    lines: list[tuple[str, str]] = []
    core = NodeCore(lambda level, text: lines.append((level, text)), T, resolve=lambda name: f"/abspose/{name}")
    core.lines = lines
    params = {"device": "cpu", "tracking.confirm_hits": 1, "detector.reuse_rois": False, "warn_period": 60.0}

    def start(**overrides):
        published = Published()
        assert core.configure({**params, **overrides}, make(**overrides)) and core.state == INACTIVE
        core.outputs = published.outputs(overrides.get("publish.debug_image", False))
        core.activate()
        return core, published

    yield start
    core.shutdown()


def wait_for(condition, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_frames_are_processed_by_the_worker_and_published(bag_frame, node):
    image, info, depth = bag_frame
    core, out = node(**{"publish.debug_image": True})
    core.on_depth(stamped(depth, image))
    core.on_image(image)
    assert core.submit(image, info)
    assert wait_for(lambda: core.stats.frames == 1)
    arr = out.skeletons[0]
    assert arr.header.stamp == image.header.stamp and arr.skeletons and out.markers and out.tf
    assert (arr.skeletons[0].joint_source == SOURCE_FUSED).sum() >= 8  # depth paired: same stamp
    pic = out.debug[0]
    assert (pic.width, pic.height, pic.encoding) == (image.width, image.height, "rgb8")
    assert len(pic.data) == pic.step * pic.height and pic.header.stamp == image.header.stamp
    T.store.serialize_cdr(pic, "sensor_msgs/msg/Image")
    stamp_s = image.header.stamp.sec + image.header.stamp.nanosec * 1e-9
    assert core.stats.people >= 1 and abs(core.stats.latency - (time.time() - stamp_s)) < 60  # node clock - stamp
    assert core._worker.daemon  # a frame stuck in the models never keeps the process alive at exit


def test_a_frame_arriving_while_one_is_processed_is_dropped_and_counted(bag_frame, node):
    image, info, _ = bag_frame
    core, out = node(use_depth=False)
    frames = [stamped(image, image, k) for k in range(6)]
    core.submit(frames[0], info)
    assert wait_for(lambda: core.stats.busy_since is not None)
    for frame in frames[1:]:  # all arrive while frame 0 is in the worker: only the newest survives
        core.submit(frame, info)
    assert wait_for(lambda: core.stats.frames == 2)
    time.sleep(0.3)
    assert core.stats.frames == 2 and core.stats.dropped == 4
    assert [a.header.stamp.sec for a in out.skeletons] == [frames[0].header.stamp.sec, frames[-1].header.stamp.sec]


def test_no_exception_in_any_stage_ends_the_worker(bag_frame, node):
    image, info, _ = bag_frame
    core, out = node(use_depth=False)
    broken_header = dataclasses.replace(image, header=None)  # AttributeError before the processor
    bad_encoding = dataclasses.replace(image, encoding="yuv422_weird")  # FrameError in the processor
    bad_info = dataclasses.replace(info, k=[0.0] * 9)  # uncalibrated camera
    for msg, cam in ((broken_header, info), (bad_encoding, info), (image, bad_info)):
        core.submit(msg, cam)
        assert wait_for(lambda: core.stats.busy_since is None and core._pending is None)
    out.fail = 1  # the publisher raises once
    core.submit(stamped(image, image, 1), info)
    assert wait_for(lambda: core.stats.failed == 2)
    core.submit(stamped(image, image, 2), info)
    assert wait_for(lambda: core.stats.frames == 1), core.lines
    assert core._worker.is_alive() and core.stats.skipped == 2
    errors = [text for level, text in core.lines if level == "error"]
    assert any("AttributeError" in t for t in errors) and any("publisher's context is invalid" in t for t in errors)
    warnings = [text for level, text in core.lines if level == "warning"]
    assert any("yuv422_weird" in t for t in warnings) and any("CameraInfo" in t for t in warnings)


def test_a_publish_failing_because_ros_shuts_down_is_quiet(bag_frame, make):
    image, info, _ = bag_frame
    lines = []
    alive = [True]
    core = NodeCore(lambda level, text: lines.append((level, text)), T, context_ok=lambda: alive[0])
    assert core.configure({"device": "cpu", "use_depth": False, "tracking.confirm_hits": 1}, make(use_depth=False))
    published = Published()
    core.outputs = published.outputs()
    core.activate()
    published.fail, alive[0] = 1, False  # Ctrl-C: the context is gone, the publisher raises
    core.submit(image, info)
    assert wait_for(lambda: core.stats.busy_since is None and core._pending is None and core._worker is not None)
    time.sleep(0.2)
    core.shutdown()
    assert core.stats.failed == 0 and core.stats.frames == 0 and not [t for level, t in lines if level == "error"]
    assert core.state == "finalized" and core._worker is None


def test_cleanup_while_a_frame_is_in_flight_waits_and_publishes_nothing_after(bag_frame, node, make):
    image, info, _ = bag_frame
    core, out = node(use_depth=False)
    core.submit(image, info)
    assert wait_for(lambda: core.stats.busy_since is not None)
    core.cleanup()  # returns once the frame in flight is done
    assert core.state == UNCONFIGURED and core.processor is None and core._worker is None
    assert not core.submit(image, info)  # not active: refused
    count = len(out.skeletons)
    time.sleep(0.3)
    assert len(out.skeletons) == count <= 1
    # configure and activate again: a working node
    core2, out2 = node(use_depth=False)
    assert core2 is core and core.state == ACTIVE
    core.submit(image, info)
    assert wait_for(lambda: core.stats.frames == 1) and len(out2.skeletons) == 1


def test_a_worker_that_outlives_stop_retires_after_its_frame(bag_frame, node):
    """stop() waits only so long: a frame still in the models then must not come back as a second worker
    after the next activate, nor publish."""
    image, info, _ = bag_frame
    core, out = node(use_depth=False)
    core.submit(image, info)
    assert wait_for(lambda: core.stats.busy_since is not None)
    old = core._worker
    assert not core.stop(timeout=0.0)  # the frame is still in flight
    core.activate()
    assert wait_for(lambda: not old.is_alive())
    assert core._worker.is_alive() and out.skeletons == []  # the stale frame went nowhere
    core.submit(stamped(image, image, 1), info)
    assert wait_for(lambda: core.stats.frames == 1) and len(out.skeletons) == 1


def test_depth_pairing_uses_the_nearest_depth_within_slop_and_says_why_not(bag_frame, node):
    image, info, depth = bag_frame
    core, out = node(depth_slop=0.1)
    core.on_depth(stamped(depth, image, 0.3))  # 0.3 s after the colour image (as in the TU/e bags)
    core.on_image(image)
    core.submit(image, info)
    assert wait_for(lambda: core.stats.frames == 1)
    assert core.stats.monocular == 1
    sources = out.skeletons[0].skeletons[0].joint_source
    assert SOURCE_FUSED not in sources and SOURCE_LIFTED in sources
    warning = next(text for level, text in core.lines if "depth_slop" in text)
    assert "/abspose/depth/image" in warning and "0.300 s" in warning and "raise depth_slop" in warning
    level, summary, values = core.diagnose()
    assert (level, values["monocular frames (no depth paired)"]) == (WARN, "1")
    assert summary.startswith("running monocular") and "0.300 s" in summary
    core.on_depth(stamped(depth, image, 0.05))  # now one within slop
    core.submit(stamped(image, image, 1e-9), info)
    assert wait_for(lambda: core.stats.frames == 2)
    assert (out.skeletons[1].skeletons[0].joint_source == SOURCE_FUSED).sum() >= 8
    assert core.stats.monocular == 1


def test_a_depth_message_without_a_usable_header_is_dropped_in_the_callback(bag_frame, node):
    _, _, depth = bag_frame
    core, _ = node()
    core.on_depth(dataclasses.replace(depth, header=None))  # would raise out of rclpy's executor
    core.on_depth_info(object())
    assert core.depth.newest_stamp() is None and core.depth_info.newest_stamp() is None
    dropped = [text for level, text in core.lines if "dropped: no usable header stamp" in text]
    assert len(dropped) == 2 and dropped[0].startswith("depth image dropped")


def test_warnings_are_throttled_per_kind(bag_frame, node):
    image, info, _ = bag_frame
    core, _ = node(use_depth=False)
    bad = dataclasses.replace(image, encoding="yuv422_weird")
    for k in range(1, 5):
        core.submit(stamped(bad, image, k), info)
        assert wait_for(lambda k=k: core.stats.skipped == k)
    assert sum("yuv422_weird" in text for _, text in core.lines) == 1  # warn_period = 60 s
    assert core.throttle.counts["skip:image"] == 4


def test_each_diagnostic_status_names_its_real_cause(bag_frame, node, make):
    image, info, _ = bag_frame
    idle = NodeCore(lambda level, text: None, T)
    assert idle.diagnose()[:2] == (WARN, "not active (unconfigured)")
    core, _ = node(use_depth=False)
    assert core.diagnose()[:2] == (WARN, "no images on '/abspose/image'")
    for _ in range(11):  # images, but the synchronizer pairs none with a CameraInfo
        core.on_image(image)
    level, summary, _ = core.diagnose()
    assert level == ERROR and "no CameraInfo on '/abspose/camera_info'" in summary and "sync_slop" in summary
    assert any("no CameraInfo" in text for _, text in core.lines)
    core.on_image(image)
    core.submit(image, info)  # paired now; the first frame is slow
    assert wait_for(lambda: core.stats.busy_since is not None)
    level, summary, _ = core.diagnose()
    assert level == OK and re.match(r"processing the first frame \(\d\.\d s; models warm up\)", summary)
    for _ in range(10):  # a pair resets the count: ten more unpaired images are no alarm yet
        core.on_image(image)
    assert core.diagnose()[0] == OK
    assert wait_for(lambda: core.stats.frames == 1)
    assert core.diagnose()[:2] == (OK, "running")
    core.on_image(image)
    core.submit(dataclasses.replace(image, encoding="yuv422_weird"), info)
    assert wait_for(lambda: core.stats.skipped == 1)
    level, summary, values = core.diagnose()
    assert level == WARN and summary.startswith("frames skipped for bad input") and "yuv422_weird" in summary
    assert values["skipped (bad input)"] == "1" and values["state"] == ACTIVE
    core.on_image(image)
    core.submit(dataclasses.replace(image, header=None), info)
    assert wait_for(lambda: core.stats.failed == 1)
    level, summary, _ = core.diagnose()
    assert level == ERROR and summary.startswith("every frame fails: AttributeError")
    core.submit(dataclasses.replace(image, encoding="yuv422_weird"), info)  # a bad frame and a good one
    assert wait_for(lambda: core.stats.skipped == 2)
    core.submit(stamped(image, image, 1), info)
    assert wait_for(lambda: core.stats.frames == 2)
    level, summary, _ = core.diagnose()
    assert (
        level == WARN and summary == "some frames dropped: AttributeError: 'NoneType' object has no attribute 'stamp'"
    )
    core.stats.last_image -= 3.0  # the camera stopped 3 s ago
    level, summary, _ = core.diagnose()
    assert level == WARN and summary.startswith("no image on '/abspose/image' for 3.")
    core.throttle.last.clear()  # the warning may repeat now: it must not
    core.on_image(image)  # after a pause the first image is no 'missing CameraInfo'
    assert core.diagnose()[:2] == (OK, "running")
    assert sum("no CameraInfo" in text for _, text in core.lines) == 1


def test_process_runs_one_frame_in_the_calling_thread_and_stop_is_safe_before_activate(bag_frame, make):
    image, info, _ = bag_frame
    published = Published()
    core = NodeCore(lambda level, text: None, T)
    assert core.stop() is True  # nothing to stop yet: no worker, no error
    assert core.configure({"device": "cpu", "use_depth": False, "tracking.confirm_hits": 1}, make(use_depth=False))
    core.outputs = published.outputs()
    assert core.process(image, info) is None  # not active: nothing is published
    core.activate()
    result = core.process(image, info)  # e.g. a test or a tool driving it frame by frame
    assert result is not None and result.stamp_ns == image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
    assert len(published.skeletons) == 1 and core.stats.frames == 1
    core.deactivate()
    assert core.state == INACTIVE and core.stop() is True


def test_diagnostics_count_the_dark_frames_the_detector_stretched(bag_frame, make):
    """The TU/e frame as recorded, at half a percent of its light, and so with a lamp: seen as is, stretched,
    and with two looks; the diagnostics count the two dark ones and say how the last was seen."""
    import numpy as np

    from conftest import darkened, with_lamp

    image, info, _ = bag_frame
    pixels = np.asarray(image.data, np.uint8).reshape(image.height, image.width, -1)
    dark = darkened(pixels, 0.005)
    core = NodeCore(lambda level, text: None, T)
    assert core.configure({"device": "cpu", "use_depth": False}, make(use_depth=False))
    core.outputs = Published().outputs()
    core.activate()
    seen = []
    for k, frame in enumerate((pixels, dark, with_lamp(dark, 0.01, (0.5, 0.5)))):
        msg = stamped(dataclasses.replace(image, data=frame.reshape(-1)), image, 0.1 * k)
        assert core.process(msg, stamped(info, image, 0.1 * k)) is not None
        seen.append(core.diagnose()[2]["last frame seen"])
    assert seen == ["as is", "stretched", "two looks"]
    assert core.diagnose()[2]["dark frames stretched"] == "2" and core.stats.dark == 2
    core.deactivate()


def test_configure_refuses_bad_parameters_and_stays_unconfigured():
    lines = []
    core = NodeCore(lambda level, text: lines.append((level, text)), T)
    assert core.configure({"tracking.max_age": float("inf")}) is False
    assert core.state == UNCONFIGURED and core.processor is None
    assert lines == [("error", "configure failed: ROS parameters: 'tracking.max_age' must be a finite number, got inf")]
    with pytest.raises(RuntimeError):
        core.activate()


def test_live_parameters_apply_at_once_the_others_at_the_next_configure(bag_frame, node):
    image, info, _ = bag_frame
    core, out = node(use_depth=False)
    later = core.apply({"publish.markers": False, "warn_period": 2.0, "depth_slop": 0.4, "fp16": True})
    assert later == ["fp16"] and any("fp16 will take effect at the next configure" in t for _, t in core.lines)
    assert core.throttle.period == 2.0 and core.params["depth_slop"] == 0.4 and not core.params["fp16"]
    core.submit(image, info)
    assert wait_for(lambda: core.stats.frames == 1)
    assert out.skeletons and not out.markers  # publish.markers switched off while running
    core.lines.clear()
    assert core.apply({"warn_period": 3.0}) == [] and not any("next configure" in t for _, t in core.lines)


def test_the_floor_is_looked_up_in_tf_at_each_image_stamp_and_a_missing_transform_is_counted(bag_frame, node):
    """With ``ground_frame`` set, every frame asks TF for the floor under the image's frame at the image's stamp;
    a lookup tf2 cannot answer is a warning naming both frames, counted in the diagnostics, and the frame runs on
    without it."""
    from abspose.ground import GroundPlane

    image, info, _ = bag_frame
    core, out = node(use_depth=False, ground_frame="base_footprint")
    asked = []

    def lookup(frame_id: str, stamp: int) -> GroundPlane:
        asked.append((frame_id, stamp))
        if len(asked) == 1:
            return GroundPlane.from_height_pitch(1.0, 0.3)
        raise LookupError('"base_footprint" passed to lookupTransform argument target_frame does not exist')

    core.ground_lookup = lookup
    core.submit(image, info)
    assert wait_for(lambda: core.stats.frames == 1)
    stamp = image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
    assert asked == [(image.header.frame_id, stamp)] and core.stats.ground == "tf" and core.stats.no_ground == 0
    core.submit(stamped(image, image, 1.0), info)
    assert wait_for(lambda: core.stats.frames == 2)
    assert asked[1] == (image.header.frame_id, stamp + 10**9) and core.stats.no_ground == 1 and core.stats.ground == ""
    frames = f"no transform from '{image.header.frame_id}' to ground_frame 'base_footprint' at the image stamp"
    assert any(frames in text and "does not exist" in text for _, text in core.lines)
    values = core.diagnose()[2]
    assert values["frames without the TF ground plane"] == "1" and values["ground plane"] == "none"
    assert len(out.skeletons) == 2  # both frames published


def test_diagnostic_rates_are_the_counts_since_the_last_report_over_its_time():
    idle = NodeCore(lambda level, text: None, T)
    idle.stats.images, idle.stats.frames = 10, 4
    idle._window = (Stats(), time.monotonic() - 2.0)  # the last report, 2 s ago, counted nothing yet
    values = idle.diagnose()[2]
    assert float(values["input rate (Hz)"]) == pytest.approx(5.0, abs=0.1)
    assert float(values["output rate (Hz)"]) == pytest.approx(2.0, abs=0.1)
    idle.stats.images = 13  # three more since that report
    idle._window = (idle._window[0], time.monotonic() - 1.5)
    assert float(idle.diagnose()[2]["input rate (Hz)"]) == pytest.approx(2.0, abs=0.1)


def test_parameter_sets_are_validated_before_they_apply():
    current = config.load(None)
    assert config.refusal(current, {"smoothing.beta": 0.5}) is None
    assert "'smoothing.min_cutoff' must be > 0" in config.refusal(current, {"smoothing.min_cutoff": 0.0})
    assert "unknown parameter 'nope'" in config.refusal(current, {"nope": 1})
    assert "'qos' must be one of" in config.refusal(current, {"qos": "foo"})
