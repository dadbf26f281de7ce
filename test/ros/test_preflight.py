"""The configure-time check: one line naming every missing or too old piece, and the command to run."""

import importlib.util

from abspose.ros import preflight
from abspose.ros.messages import MessageTypes
from abspose.ros.node_core import UNCONFIGURED, NodeCore


def test_torch_versions():
    assert "torch 1.13.1 is too old" in preflight.torch_problem("1.13.1")
    assert preflight.torch_problem("2.13.0+cpu") is None and preflight.torch_problem("2.3.0") is None
    assert "not installed" in preflight.torch_problem(None)


def test_missing_modules_name_the_pip_package():
    assert preflight.missing_modules({"yaml": "pyyaml"}) == []
    assert preflight.missing_modules({"no_such_module_abspose": "abspose-extra"}) == [
        "Python module 'no_such_module_abspose' is missing (pip install abspose-extra)"
    ]
    assert preflight.problems() == []  # this environment has everything


def without_mediapipe(monkeypatch, tmp_path):
    """An empty weights cache on a machine without mediapipe (a robot after colcon build)."""
    find = importlib.util.find_spec
    monkeypatch.setenv("ABSPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mediapipe" else find(name, *a))


def test_missing_weights_give_the_command_to_run(monkeypatch, tmp_path):
    assert preflight.weights_problem() is None  # the session's cache holds them
    without_mediapipe(monkeypatch, tmp_path)
    problem = preflight.weights_problem()
    assert str(tmp_path / "cache") in problem and "`abspose weights`" in problem
    assert "ros2 run abspose_ros abspose weights" in problem


def test_configure_fails_in_one_line_and_downloads_nothing(monkeypatch, tmp_path):
    without_mediapipe(monkeypatch, tmp_path)
    lines = []
    core = NodeCore(lambda level, text: lines.append((level, text)), MessageTypes.rosbags())
    assert core.configure({"device": "cpu"}) is False
    assert core.state == UNCONFIGURED and len(lines) == 1
    level, text = lines[0]
    assert level == "error" and text.startswith("configure failed: BlazePose weights are not in")
    assert not (tmp_path / "cache" / "wheels").exists()  # no download was tried


def test_the_runtime_never_downloads_weights(monkeypatch, tmp_path):
    import pytest

    from abspose.detect2d import BlazePose
    from abspose.models.blazepose_weights import WeightsError

    without_mediapipe(monkeypatch, tmp_path)
    with pytest.raises(WeightsError, match="Run `abspose weights` once"):
        BlazePose("cpu")
    assert not (tmp_path / "cache" / "wheels").exists()
