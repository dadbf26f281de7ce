"""The layout's rules: the runtime never loads the training wing, and only the node script imports ROS."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "abspose"
ROS_PYTHON = {"rclpy", "tf2_ros", "message_filters", "diagnostic_updater", "rosidl_runtime_py", "launch_ros"}


def imported_modules(source: str) -> set[str]:
    """Top-level and function-level imports of one Python source, as absolute dotted names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def loaded_after_import(*names: str) -> set[str]:
    """``abspose`` modules in ``sys.modules`` after importing ``names`` (modules, or names inside modules,
    which are skipped) in a fresh interpreter."""
    code = (
        "import importlib, importlib.util, sys\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        spec = importlib.util.find_spec(name)\n"
        "    except ModuleNotFoundError:\n"
        "        spec = None  # a class or function imported from a module\n"
        "    if spec is not None:\n"
        "        importlib.import_module(name)\n"
        "print(*sorted(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    return {m for m in out.split() if m.startswith("abspose")}


def test_runtime_and_node_load_no_training_module():
    node = {m for m in imported_modules((REPO / "scripts" / "abspose_node").read_text()) if m.startswith("abspose.")}
    loaded = loaded_after_import("abspose.pipeline", "abspose.ros.processor", "abspose.ros.runner", *sorted(node))
    assert {"abspose.pipeline", "abspose.ros.processor", "abspose.ros.config"} <= loaded  # the check itself ran
    assert not {m for m in loaded if m.startswith("abspose.training")}


def test_no_runtime_source_imports_the_training_wing():
    """Also lazy imports inside functions, which the sys.modules check above cannot see."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("abspose/training/"):
            continue
        bad = {m for m in imported_modules(path.read_text()) if m.startswith("abspose.training")}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders


def test_only_the_node_script_imports_ros():
    offenders = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(REPO / "bench").glob("*.py")]):
        roots = {m.split(".")[0] for m in imported_modules(path.read_text())}
        if roots & ROS_PYTHON or any(r.endswith("_msgs") for r in roots):
            offenders.append(path.relative_to(REPO).as_posix())
    assert not offenders
    assert {"rclpy", "tf2_ros", "message_filters"} <= {
        m.split(".")[0] for m in imported_modules((REPO / "scripts" / "abspose_node").read_text())
    }


def test_imports_checker_sees_lazy_and_aliased_imports():
    """The rule tests above would pass vacuously if the parser missed these forms."""
    source = "import rclpy as r\ndef f():\n    from abspose.training import train\n    import tf2_ros.buffer\n"
    assert {"rclpy", "abspose.training", "abspose.training.train", "tf2_ros.buffer"} <= imported_modules(source)


def test_readme_layout_table_names_every_module():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout") : readme.index("### Why the Python package")]
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name not in ("__init__.py", "__main__.py")]
    missing = [rel for rel in (p.relative_to(REPO).as_posix() for p in modules) if f"`{rel}`" not in layout]
    assert not missing, f"README's layout tables do not name {missing}"


def test_every_wing_is_a_package_that_pip_and_colcon_install():
    from setuptools import find_packages

    wings = {p.parent.relative_to(REPO).as_posix().replace("/", ".") for p in PACKAGE.rglob("__init__.py")}
    assert {"abspose", "abspose.ros", "abspose.models", "abspose.training"} <= wings
    assert set(find_packages(str(REPO), include=["abspose", "abspose.*"])) == wings
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'\[tool\.setuptools\.packages\.find\]\ninclude = \["abspose", "abspose\.\*"\]', pyproject)
    # ament_python_install_package installs the package folder whole (install(DIRECTORY ...)), wings included
    assert "ament_python_install_package(abspose)" in (REPO / "CMakeLists.txt").read_text()


def test_tests_follow_the_wings():
    for wing in ("ros", "models", "training"):
        modules = {p.stem for p in (PACKAGE / wing).glob("*.py") if p.stem != "__init__"}
        tests = {p.stem.removeprefix("test_") for p in (REPO / "test" / wing).glob("test_*.py")}
        stray = {p.stem.removeprefix("test_") for p in (REPO / "test").glob("test_*.py")} & modules
        assert not stray, f"tests of abspose/{wing} outside test/{wing}: {stray}"
        assert tests, f"no tests under test/{wing}"
