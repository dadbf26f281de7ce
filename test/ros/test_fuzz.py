"""A slice of the fuzz harness (tools/fuzz_frames.py) in CI: mutated real frames with stamp jumps through
FrameProcessor; no crash, no hang, no published output that lies."""

import sys

from conftest import REPO, data_path

sys.path.insert(0, str(REPO / "tools"))

import fuzz_frames


def test_mutated_frames_never_crash_hang_or_publish_garbage():
    data_path("rgbd", "tue_hero", "tue_hero_rgbd_ros2_mcap")
    counts, examples = fuzz_frames.fuzz(cases=300, seed=1)
    bad = {k: v for k, v in examples.items() if k[0] in ("crash", "hang", "garbage")}
    assert not bad, bad
    assert counts["ok"] > 30 and counts["refused"] > 30  # both paths exercised
    assert sum(counts.values()) == 300


def test_the_garbage_oracle_sees_lies():
    """The checks above would pass vacuously if the oracle saw nothing: feed it a lying result."""
    import dataclasses

    from abspose.ros.messages import MessageTypes
    from abspose.ros.outputs import header

    T = MessageTypes.rosbags()
    hdr = header(T, 5_000_000_000, "cam")
    image = T.make("sensor_msgs/msg/Image", header=hdr)
    point = T.make("geometry_msgs/msg/Point", x=float("nan"), y=0.0, z=1.0)
    skeleton = T.make("abspose_ros/msg/Skeleton", id="p1", joints=[point] * 18, joint_source=[2] * 18)
    arr = T.make("abspose_ros/msg/SkeletonArray", header=hdr, skeletons=[skeleton])

    @dataclasses.dataclass
    class Result:
        skeletons: object
        tf: list

    assert "non-finite joint" in fuzz_frames.garbage(Result(arr, []), image)
    other = T.make("sensor_msgs/msg/Image", header=header(T, 6_000_000_000, "cam"))
    assert "stamp" in fuzz_frames.garbage(Result(arr, []), other)
    rot = T.make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=2.0)
    tf = T.make(
        "geometry_msgs/msg/TransformStamped",
        header=hdr,
        child_frame_id="body_p1",
        transform=T.make("geometry_msgs/msg/Transform", rotation=rot),
    )
    assert "bad transform" in fuzz_frames.garbage(Result(None, [tf]), image)
