"""The rclpy node, launch file and RViz config, checked without ROS 2 (none exists on CI machines).

The node is glue over FrameProcessor (tested end to end through bags in test_runner / test_processor).
Here: it parses, uses only parameters that exist, imports only ROS packages package.xml declares,
and the launch file and RViz config point at the topics the node publishes.
"""

import ast
import os
import re

import yaml
from catkin_pkg.package import parse_package

from abspose.ros import config

from conftest import REPO

NODE = REPO / "scripts" / "abspose_node"
LAUNCH = REPO / "launch" / "abspose.launch.py"
# python module -> the package.xml dependency that provides it
ROS_MODULES = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "message_filters": "message_filters",
    "tf2_ros": "tf2_ros_py",
    "diagnostic_updater": "diagnostic_updater",
    "diagnostic_msgs": "diagnostic_msgs",
    "sensor_msgs": "sensor_msgs",
    "visualization_msgs": "visualization_msgs",
    "abspose_ros": "abspose_ros",
    "launch": "launch",
    "launch_ros": "launch_ros",
}


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_node_script_is_an_executable_python_program_using_declared_dependencies():
    text = NODE.read_text()
    assert text.startswith("#!/usr/bin/env python3") and os.access(NODE, os.X_OK)
    tree = ast.parse(text)
    deps = {d.name for d in parse_package(REPO / "package.xml").exec_depends} | {"abspose_ros"}
    third_party = {"abspose", "__future__"}
    for module in imported_modules(tree) - third_party:
        assert module in ROS_MODULES, f"node imports '{module}', which is neither ROS nor known"
        assert ROS_MODULES[module] in deps, f"node imports '{module}' but package.xml lacks {ROS_MODULES[module]}"
    # the node reads parameters only by names that exist (and declares all of them from DEFAULTS)
    used = set(re.findall(r'p\["([a-z_.0-9]+)"\]', text)) | set(re.findall(r'params\["([a-z_.0-9]+)"\]', text))
    used |= set(re.findall(r'get_parameter\("([a-z_.0-9]+)"\)', text))
    assert used and used <= set(config.DEFAULTS), used - set(config.DEFAULTS)
    assert "for name, value in config.DEFAULTS.items():" in text and "declare_parameter(name, value)" in text
    # lifecycle: the four transitions are implemented, publishers are lifecycle publishers
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert {"on_configure", "on_activate", "on_deactivate", "on_cleanup", "on_shutdown", "main"} <= functions
    assert "create_lifecycle_publisher(SkeletonArray" in text and "create_lifecycle_publisher(MarkerArray" in text
    # cleanup (configure may follow again) destroys what configure created, lifecycle publishers as such
    cleanup = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "on_cleanup")
    calls = {c.func.attr for c in ast.walk(cleanup) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)}
    assert "destroy_lifecycle_publisher" in calls and "destroy_publisher" in calls


def test_node_keeps_to_glue():
    """What the node decides lives in NodeCore (tested with threads in test_node_core): the script only wires
    rclpy to it, with no threads, clocks or frame handling of its own."""
    text = NODE.read_text()
    code_lines = [line for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(code_lines) < 150
    modules = imported_modules(ast.parse(text))
    assert not modules & {"torch", "threading", "time", "numpy"}
    for hook in ("configure(", "activate()", "deactivate()", "cleanup()", "shutdown()", "diagnose()"):
        assert f"self.core.{hook}" in text
    for callback in ("on_image", "submit", "on_depth", "on_depth_info"):
        assert f"self.core.{callback}" in text
    assert "config.refusal(" in text and "add_on_set_parameters_callback" in text


def test_launch_file_arguments_and_parameters():
    tree = ast.parse(LAUNCH.read_text())
    assert imported_modules(tree) <= {"launch", "launch_ros", "tempfile"}
    text = LAUNCH.read_text()
    for key in re.findall(r'overrides\["([a-z_.0-9]+)"\]', text) + re.findall(r'^\s+"([a-z_]+_topic)":', text, re.M):
        assert key in config.DEFAULTS, key
    args = ast.literal_eval(
        next(
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ARGUMENTS"
        )
    )
    assert {"camera_namespace", "use_depth", "device", "rviz"} <= set(args)
    assert 'executable="abspose_node"' in text and 'name="abspose"' in text
    assert '"config", "abspose.rviz"' in text and '"config", "abspose.yaml"' in text


def test_a_namespaced_launch_keeps_the_parameters_and_the_rviz_topics():
    """`namespace:=robot` once dropped config/abspose.yaml (keyed by the node name) and RViz showed nothing."""
    tree = yaml.safe_load((REPO / "config" / "abspose.yaml").read_text())
    assert list(tree) == ["/**"]  # matches the node under any name and namespace
    fn = next(n for n in ast.parse(LAUNCH.read_text()).body if getattr(n, "name", "") == "_namespaced_rviz")
    scope: dict = {}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(LAUNCH), "exec"), scope)
    rviz = (REPO / "config" / "abspose.rviz").read_text()
    moved = yaml.safe_load(scope["_namespaced_rviz"](rviz, "/robot/"))
    topics = {d["Class"]: d.get("Topic", {}).get("Value") for d in moved["Visualization Manager"]["Displays"]}
    assert topics["rviz_default_plugins/MarkerArray"] == f"/robot/{config.NODE_NAME}/markers"
    assert topics["rviz_default_plugins/Image"] == f"/robot/{config.NODE_NAME}/debug_image"
    assert scope["_namespaced_rviz"](rviz, "") == rviz


def test_rviz_config_shows_the_node_outputs():
    rviz = yaml.safe_load((REPO / "config" / "abspose.rviz").read_text())
    displays = {d["Class"]: d for d in rviz["Visualization Manager"]["Displays"]}
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == f"/{config.NODE_NAME}/markers"
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == f"/{config.NODE_NAME}/debug_image"
    assert "rviz_default_plugins/TF" in displays


def test_cmake_installs_node_launch_and_config():
    cmake = (REPO / "CMakeLists.txt").read_text()
    # the abspose command after a colcon build (`ros2 run abspose_ros abspose weights`)
    script = REPO / "scripts" / "abspose"
    assert os.access(script, os.X_OK) and "from abspose.cli import main" in script.read_text()
    assert "install(PROGRAMS scripts/abspose DESTINATION lib/${PROJECT_NAME})" in cmake
    assert 'file(GLOB node_scripts "${CMAKE_CURRENT_SOURCE_DIR}/scripts/abspose_*")' in cmake
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in cmake
    assert NODE.name.startswith("abspose_")
