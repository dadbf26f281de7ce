"""The recording's TF tree looked up like tf2, and `abspose run` taking the floor from a bag's /tf_static."""

import math

import numpy as np
import pytest
from ros.test_runner import TUE_PARAMS, read_outputs
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Writer
from scipy.spatial.transform import Rotation

from abspose.cli import main
from abspose.fuse import SOURCE_GROUND
from abspose.ground import GroundPlane
from abspose.ros.messages import MessageTypes, typestore
from abspose.ros.runner import Topics, bag_frames
from abspose.ros.tf_store import TransformError, TransformStore

from conftest import data_path

T = MessageTypes.rosbags()
CAMERA = "head_rgbd_sensor_rgb_frame"
OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # optical axes in x-forward, z-up


def transform(parent: str, child: str, stamp_ns: int, rotation: Rotation, translation) -> object:
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    x, y, z, w = rotation.as_quat()
    return T.make(
        "geometry_msgs/msg/TransformStamped",
        header=T.make(
            "std_msgs/msg/Header", stamp=T.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec), frame_id=parent
        ),
        child_frame_id=child,
        transform=T.make(
            "geometry_msgs/msg/Transform",
            translation=T.make("geometry_msgs/msg/Vector3", x=translation[0], y=translation[1], z=translation[2]),
            rotation=T.make("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w),
        ),
    )


def tf_message(*transforms) -> object:
    return T.make("tf2_msgs/msg/TFMessage", transforms=list(transforms))


def head_chain(store: TransformStore, tilt_at: dict[int, float]) -> None:
    """base_footprint -> torso (static, 0.8 m up) -> head (tilting over time) -> optical frame (static)."""
    store.add(tf_message(transform("base_footprint", "torso", 0, Rotation.identity(), [0.0, 0.0, 0.8])), True)
    store.add(tf_message(transform("head", CAMERA, 0, Rotation.from_matrix(OPTICAL), [0.05, 0.0, 0.1])), True)
    for stamp, tilt in tilt_at.items():
        store.add(tf_message(transform("torso", "head", stamp, Rotation.from_euler("y", tilt), [0.0, 0.0, 0.4])))


def test_a_chain_through_static_and_moving_frames_gives_the_cameras_floor():
    store = TransformStore()
    head_chain(store, {0: 0.0, 1_000_000_000: math.radians(30)})
    q, t = store.lookup("base_footprint", CAMERA, 500_000_000)  # halfway: 15 deg down (slerp)
    plane = GroundPlane.from_transform(q, t)
    assert math.degrees(plane.pitch) == pytest.approx(15.0, abs=1e-6)
    tilt = math.radians(15)
    assert plane.height == pytest.approx(1.2 + 0.1 * math.cos(tilt) - 0.05 * math.sin(tilt), abs=1e-9)
    # the inverse lookup is the inverse transform
    q2, t2 = store.lookup(CAMERA, "base_footprint", 500_000_000)
    back = Rotation.from_quat(q2).apply(t) + t2
    assert np.allclose(back, 0.0, atol=1e-9)


def test_lookups_that_tf2_would_refuse_are_refused():
    store = TransformStore(tolerance=0.5)
    head_chain(store, {0: 0.0, 1_000_000_000: 0.1})
    with pytest.raises(TransformError, match="within the tolerance"):
        store.lookup("base_footprint", CAMERA, 3_000_000_000)  # 2 s after the last head transform
    store.add(tf_message(transform("map", "elsewhere", 0, Rotation.identity(), [1.0, 0.0, 0.0])), True)
    with pytest.raises(TransformError, match="not connected"):
        store.lookup("map", CAMERA, 0)


def test_moving_transforms_are_interpolated_at_real_stamps_and_held_at_the_ends():
    """Stamps of today's epoch (sec ~1.7e9: a unit slip in sec -> ns would be seconds off), a head tilting from
    0 to 30 deg over one second, then still for 10 s."""
    t0 = 1_765_000_000 * 1_000_000_000 + 250_000_000
    store = TransformStore(tolerance=0.5)
    head_chain(store, {t0: 0.0, t0 + 1_000_000_000: math.radians(30), t0 + 11_000_000_000: math.radians(30)})

    def pitch(stamp: int) -> float:
        return math.degrees(GroundPlane.from_transform(*store.lookup("base_footprint", CAMERA, stamp)).pitch)

    assert pitch(t0 + 250_000_000) == pytest.approx(7.5, abs=1e-6)  # a quarter of the way
    assert pitch(t0 - 300_000_000) == pytest.approx(0.0, abs=1e-6)  # before the first, within the tolerance
    assert pitch(t0 + 11_400_000_000) == pytest.approx(30.0, abs=1e-6)  # after the last, within the tolerance
    # 0.2 s after a transform and 9.8 s before the next, or the other way round: near one of them is enough
    assert pitch(t0 + 1_200_000_000) == pytest.approx(30.0, abs=1e-6)
    assert pitch(t0 + 10_800_000_000) == pytest.approx(30.0, abs=1e-6)
    with pytest.raises(TransformError, match="within the tolerance"):
        store.lookup("base_footprint", CAMERA, t0 + 11_600_000_000)


def _bag_with_tf(tmp_path, height: float, pitch_deg: float):
    """The TU/e recording with a /tf_static that puts its camera ``height`` m over base_footprint."""
    out = tmp_path / "with_tf"
    ts = typestore()
    rot = Rotation.from_euler("Y", math.radians(pitch_deg)) * Rotation.from_matrix(OPTICAL)
    static = tf_message(transform("base_footprint", CAMERA, 0, rot, [0.0, 0.0, height]))
    with AnyReader([data_path("rgbd", "tue_hero", "tue_hero_rgbd_ros2_mcap")]) as reader, Writer(out, version=8) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=ts) for c in reader.connections}
        first = None
        for conn, log_ns, raw in reader.messages():
            if first is None:
                first = log_ns
                tf_conn = w.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=ts)
                w.write(tf_conn, log_ns, ts.serialize_cdr(static, "tf2_msgs/msg/TFMessage"))
            w.write(conns[conn.id], log_ns, raw)
    return out


def test_the_runner_reads_the_floor_from_the_bags_tf(tmp_path, capsys):
    bag = _bag_with_tf(tmp_path, 1.3, 5.0)
    frames = list(bag_frames([bag], Topics(), 0.5, ground_frame="base_footprint"))
    assert len(frames) == 5 and all(f.ground is not None and not f.ground_error for f in frames)
    assert frames[0].ground.height == pytest.approx(1.3) and math.degrees(frames[0].ground.pitch) == pytest.approx(5.0)
    # a frame name the tree does not hold: no floor, and the reason
    missing = list(bag_frames([bag], Topics(), 0.5, ground_frame="odom"))
    assert all(f.ground is None and "odom" in f.ground_error for f in missing)
    out = tmp_path / "out.mcap"
    assert main(["run", str(bag), "-o", str(out), *TUE_PARAMS, "-p", "ground_frame=base_footprint"]) == 0
    sources = [s.joint_source for m in read_outputs(out)["/abspose/skeletons"] for s in m.skeletons]
    assert any((src == SOURCE_GROUND).any() for src in sources)  # people beyond the depth placed by their feet
    assert main(["run", str(bag), "-o", str(tmp_path / "b.mcap"), *TUE_PARAMS, "-p", "ground_frame=odom"]) == 0
    assert "no floor from the recording's TF" in capsys.readouterr().err
