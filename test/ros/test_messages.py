import math
import re

import numpy as np
import pytest
from catkin_pkg.package import parse_package
from rosbags.serde import SerdeError

from abspose import skeleton as sk
from abspose.ros.messages import MESSAGE_NAMES, MessageTypes, msg_dir, typename, typestore

from conftest import REPO


def populated_array():
    ts = typestore()
    T = ts.types
    Point, Vector3 = T["geometry_msgs/msg/Point"], T["geometry_msgs/msg/Vector3"]
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]
    Skeleton, Kp = T[typename("Skeleton")], T[typename("Keypoint2D")]
    rng = np.random.default_rng(0)
    people = []
    for i in range(3):
        joints = rng.normal(size=(sk.NUM_JOINTS, 3)) + [0, 0, 2.0 + i]
        joints[sk.JOINT_INDEX["spine"]] = np.nan  # invalid joint stays in place as NaN
        people.append(
            Skeleton(
                id=f"p{i + 1}",
                track_state=Skeleton.TRACK_CONFIRMED,
                score=0.9,
                root=Point(*joints[0]),
                root_velocity=Vector3(0.1, 0.0, -0.2),
                joints=[Point(*j) for j in joints],
                joint_uncertainty=rng.uniform(0.01, 0.2, sk.NUM_JOINTS).astype(np.float32),
                joint_source=np.full(sk.NUM_JOINTS, Skeleton.SOURCE_FUSED, dtype=np.uint8),
                keypoints=[Kp(float(u), float(v)) for u, v in rng.uniform(0, 640, (sk.NUM_JOINTS, 2))],
                keypoint_confidence=rng.uniform(0, 1, sk.NUM_JOINTS).astype(np.float32),
            )
        )
    return T[typename("SkeletonArray")](
        header=Header(stamp=Time(sec=1556880098, nanosec=421924822), frame_id="head_rgbd_sensor_rgb_frame"),
        skeleton=sk.SKELETON_NAME,
        joint_names=list(sk.JOINT_NAMES),
        skeletons=people,
    )


def as_plain(msg):
    """Message -> nested plain Python values (NaN-aware comparable)."""
    if hasattr(msg, "__dataclass_fields__"):
        return {f: as_plain(getattr(msg, f)) for f in msg.__dataclass_fields__ if f != "__msgtype__"}
    if isinstance(msg, np.ndarray):
        return [as_plain(x) for x in msg.tolist()]
    if isinstance(msg, list | tuple):
        return [as_plain(x) for x in msg]
    if isinstance(msg, float):
        return "nan" if math.isnan(msg) else pytest.approx(msg, rel=1e-6)
    return msg


def test_skeleton_array_round_trips_through_cdr():
    ts = typestore()
    msg = populated_array()
    raw = ts.serialize_cdr(msg, typename("SkeletonArray"))
    back = ts.deserialize_cdr(raw, typename("SkeletonArray"))
    assert as_plain(back) == as_plain(msg)
    assert back.skeletons[2].joints[sk.JOINT_INDEX["spine"]].x != back.skeletons[2].joints[sk.JOINT_INDEX["spine"]].x
    assert back.header.frame_id == "head_rgbd_sensor_rgb_frame" and back.skeletons[0].id == "p1"


def test_per_joint_arrays_are_fixed_length_and_match_the_skeleton_module():
    ts = typestore()
    Skeleton = ts.types[typename("Skeleton")]
    assert Skeleton.NUM_JOINTS == sk.NUM_JOINTS
    text = (msg_dir() / "Skeleton.msg").read_text()
    sizes = re.findall(r"^\S+\[(\d+)\]\s+\w+", text, flags=re.M)
    assert len(sizes) == 5 and set(sizes) == {str(sk.NUM_JOINTS)}
    # a per-joint array of the wrong length is not a valid message
    msg = populated_array()
    msg.skeletons[0].joint_uncertainty = msg.skeletons[0].joint_uncertainty[:-1]
    with pytest.raises(SerdeError, match="array length"):
        ts.serialize_cdr(msg, typename("SkeletonArray"))


def test_constants_are_distinct_and_equal_the_python_ones():
    """The core fills joint_source and track_state with fuse.SOURCE_* and track.* values: they must be the
    .msg constants a consumer compares against."""
    from abspose import fuse, track

    Skeleton = typestore().types[typename("Skeleton")]
    states = [Skeleton.TRACK_TENTATIVE, Skeleton.TRACK_CONFIRMED, Skeleton.TRACK_COASTING, Skeleton.TRACK_ENDED]
    names = ("INVALID", "DEPTH", "LIFTED", "FUSED", "GROUND", "TRACK")
    sources = [getattr(Skeleton, f"SOURCE_{n}") for n in names]
    assert len(set(states)) == 4 and len(set(sources)) == len(names)
    assert states == [track.TENTATIVE, track.CONFIRMED, track.COASTING, track.ENDED]
    assert sources == [getattr(fuse, f"SOURCE_{n}") for n in names]
    assert Skeleton.NUM_JOINTS == sk.NUM_JOINTS


def test_package_xml_is_format_3_ament_cmake_and_lists_message_dependencies():
    pkg = parse_package(str(REPO / "package.xml"))
    assert pkg.package_format == 3 and pkg.name == "abspose_ros"
    assert pkg.get_build_type() == "ament_cmake"
    names = lambda deps: {d.name for d in deps}  # noqa: E731
    assert {"ament_cmake", "ament_cmake_python", "rosidl_default_generators"} <= names(pkg.buildtool_depends)
    assert {"std_msgs", "geometry_msgs"} <= names(pkg.build_depends) & names(pkg.exec_depends)
    runtime = {"rclpy", "rosidl_default_runtime", "sensor_msgs", "visualization_msgs", "message_filters"}
    runtime |= {"tf2_ros_py", "diagnostic_updater", "launch_ros", "python3-numpy", "python3-pil", "rcl_interfaces"}
    assert runtime <= names(pkg.exec_depends)
    # rosdep's python3-torch is too old (1.13 on Debian 12) and CPU-only: torch comes from pip (README)
    assert "python3-torch" not in names(pkg.exec_depends)
    assert "rosidl_interface_packages" in {g.name for g in pkg.member_of_groups}
    # every message dependency used in the .msg files is a declared dependency
    used = set()
    for name in MESSAGE_NAMES:
        used |= set(re.findall(r"^(\w+)/\w+", (msg_dir() / f"{name}.msg").read_text(), flags=re.M))
    assert used <= names(pkg.build_depends)


def test_cmakelists_generates_every_message_file_and_installs_python_launch_config():
    cmake = (REPO / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"(msg/\w+\.msg)"', cmake))
    on_disk = {f"msg/{p.name}" for p in (REPO / "msg").glob("*.msg")}
    assert listed == on_disk == {f"msg/{n}.msg" for n in MESSAGE_NAMES}
    assert "rosidl_generate_interfaces(${PROJECT_NAME}" in cmake
    assert "ament_python_install_package(abspose)" in cmake
    assert re.search(r"install\(DIRECTORY launch config DESTINATION share/\$\{PROJECT_NAME\}\)", cmake)
    assert "lib/${PROJECT_NAME}" in cmake


def test_made_messages_get_ros_defaults_of_the_right_types_and_serialize():
    """What make() leaves out is what rclpy would default: 0 of the field's type, False, '', empty sequences,
    zeroed fixed arrays, default sub-messages."""
    T = MessageTypes.rosbags()
    info = T.make("sensor_msgs/msg/CameraInfo", width=640)
    assert info.width == 640 and type(info.height) is int and info.height == 0 and type(info.binning_x) is int
    assert info.distortion_model == "" and info.header.frame_id == "" and info.header.stamp.sec == 0
    assert len(info.d) == 0 and info.k.shape == (9,) and info.k.dtype == np.float64 and not info.k.any()
    assert info.roi.do_rectify is False and type(info.roi.width) is int
    joints = T.make("sensor_msgs/msg/JointState")
    assert joints.name == [] and len(joints.position) == 0  # string[] and float64[]
    assert T.make("visualization_msgs/msg/MarkerArray").markers == []
    q = T.make("geometry_msgs/msg/Quaternion", w=1.0)
    assert type(q.x) is float and q.x == 0.0
    image = T.make(
        "sensor_msgs/msg/Image", height=1, width=2, encoding="rgb8", step=6, data=T.uint8_array(bytes(range(6)))
    )
    assert image.data.dtype == np.uint8 and image.data.tolist() == list(range(6))
    ts = typestore()
    for msg in (info, joints, image):
        name = msg.__msgtype__
        assert as_plain(ts.deserialize_cdr(ts.serialize_cdr(msg, name), name)) == as_plain(msg)
