"""Launch the abspose node (and optionally RViz).

    ros2 launch abspose_ros abspose.launch.py camera_namespace:=/camera/camera rviz:=true

Topics are <camera_namespace>/<image|camera_info|depth|depth_camera_info>; the defaults fit the
RealSense wrapper (color/image_raw, aligned_depth_to_color/image_raw). Every other parameter comes from
``config`` (default: this package's config/abspose.yaml); ``device``, ``use_depth`` and ``ground_frame``
override it.
"""

import tempfile

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARGUMENTS = {
    "camera_namespace": ("/camera", "namespace of the camera topics"),
    "image": ("color/image_raw", "colour image topic, relative to camera_namespace"),
    "camera_info": ("color/camera_info", "its CameraInfo topic"),
    "depth": ("aligned_depth_to_color/image_raw", "depth image topic (16UC1 mm or 32FC1 m)"),
    "depth_camera_info": ("aligned_depth_to_color/camera_info", "depth CameraInfo topic"),
    "use_depth": ("true", "use the depth image when it arrives"),
    "device": ("", "cpu, cuda, cuda:1 ('' = cuda when available)"),
    "ground_frame": ("", "TF frame on the floor, z up (e.g. base_footprint): feet on it place people ('' = none)"),
    "namespace": ("", "namespace of the abspose node"),
    "rviz": ("false", "open RViz with config/abspose.rviz"),
    "fixed_frame": ("camera_color_optical_frame", "RViz fixed frame (the image's frame_id works)"),
}


def _topic(ns: str, name: str) -> str:
    return name if name.startswith("/") else f"{ns.rstrip('/')}/{name}"


def _namespaced_rviz(text: str, namespace: str) -> str:
    """The RViz config's /abspose/... topics moved under the node's namespace."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return text.replace("Value: /abspose/", f"Value: {ns}/abspose/")


def _node(context):
    get = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    ns = get("camera_namespace")
    overrides = {
        "image_topic": _topic(ns, get("image")),
        "camera_info_topic": _topic(ns, get("camera_info")),
        "depth_topic": _topic(ns, get("depth")),
        "depth_camera_info_topic": _topic(ns, get("depth_camera_info")),
        "use_depth": get("use_depth").lower() in ("true", "1", "yes"),
    }
    if get("device"):
        overrides["device"] = get("device")
    if get("ground_frame"):
        overrides["ground_frame"] = get("ground_frame")
    if get("rviz").lower() in ("true", "1", "yes"):
        overrides["publish.debug_image"] = True  # RViz shows the 2D overlay
    node = LifecycleNode(
        package="abspose_ros",
        executable="abspose_node",
        name="abspose",
        namespace=get("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("config"), overrides],
    )
    rviz_config = PathJoinSubstitution([FindPackageShare("abspose_ros"), "config", "abspose.rviz"]).perform(context)
    if get("namespace").strip("/"):  # the shipped config shows /abspose/...: write one for this namespace
        with open(rviz_config) as f:
            text = _namespaced_rviz(f.read(), get("namespace"))
        with tempfile.NamedTemporaryFile("w", prefix="abspose_", suffix=".rviz", delete=False) as f:
            f.write(text)
            rviz_config = f.name
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="abspose_rviz",
        output="screen",
        arguments=["-d", rviz_config, "-f", get("fixed_frame")],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return [node, rviz]


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument(name, default_value=value, description=text) for name, (value, text) in ARGUMENTS.items()
    ]
    args.append(
        DeclareLaunchArgument(
            "config",
            default_value=PathJoinSubstitution([FindPackageShare("abspose_ros"), "config", "abspose.yaml"]),
            description="parameter file",
        )
    )
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
