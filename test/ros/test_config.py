"""Parameters: the shipped YAML is the defaults table; files and overrides are checked by name, type and range."""

import re

import pytest

from abspose.ros import config
from abspose.track import TrackConfig

from conftest import REPO


def test_shipped_yaml_matches_the_defaults():
    assert config.load(REPO / "config" / "abspose.yaml") == config.DEFAULTS


def test_overrides_and_settings(tmp_path):
    path = tmp_path / "p.yaml"
    config.write_yaml(path, {"tracking.max_age": 2, "use_depth": False, "lifter.flip_average": False}, node="/**")
    params = config.load(path, {"device": "cpu", "smoothing.enabled": False})
    assert params["tracking.max_age"] == 2.0 and isinstance(params["tracking.max_age"], float)
    s = config.settings(params)
    assert s.pipeline.use_depth is False and s.pipeline.device == "cpu" and s.pipeline.flip_average is False
    assert s.tracking.max_age == 2.0 and s.tracking.smoothing is False and isinstance(s.tracking, TrackConfig)
    assert s.pipeline.depth.scale is None  # 0 = by encoding
    assert config.parse_override("tracking.confirm_hits=1") == ("tracking.confirm_hits", 1)


def test_bad_files_and_values_name_the_problem(tmp_path):
    with pytest.raises(config.ConfigError, match=r"unknown parameter 'tracking.maxage'"):
        config.load(None, {"tracking.maxage": 1.0})
    with pytest.raises(config.ConfigError, match="'fp16' must be bool"):
        config.load(None, {"fp16": "yes"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("abspose: {ros__parameters: {use_depth: [1,\n")
    with pytest.raises(config.ConfigError, match=r"bad.yaml: cannot read"):
        config.load(bad)
    none = tmp_path / "none.yaml"
    none.write_text("abspose: {}\n")
    with pytest.raises(config.ConfigError, match=r"none.yaml: expected one"):
        config.load(none)
    with pytest.raises(config.ConfigError, match="NAME=VALUE"):
        config.parse_override("device")


def test_values_out_of_range_are_refused_like_wrong_types():
    # every numeric parameter has limits, and the defaults and the shipped YAML lie within them
    numeric = {k for k, v in config.DEFAULTS.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    assert numeric == set(config.LIMITS)
    config.check(dict(config.DEFAULTS))
    for name, value, message in [
        ("smoothing.min_cutoff", 0.0, "'smoothing.min_cutoff' must be > 0, got 0.0"),  # would freeze skeletons
        ("min_keypoint_confidence", 2.0, "'min_keypoint_confidence' must be in [0, 1], got 2.0"),
        ("queue_size", 0, "'queue_size' must be >= 1, got 0"),
        ("tracking.max_age", -1.0, "'tracking.max_age' must be >= 0, got -1.0"),
        ("depth.noise_k", float("nan"), "'depth.noise_k' must be a finite number, got nan"),
        ("tracking.max_age", float("inf"), "'tracking.max_age' must be a finite number, got inf"),
        ("publish.marker_lifetime", float("inf"), "'publish.marker_lifetime' must be a finite number, got inf"),
        ("smoothing.beta", float("inf"), "'smoothing.beta' must be a finite number, got inf"),
        ("qos", "best_effort", "'qos' must be one of sensor_data, reliable, got 'best_effort'"),
    ]:
        with pytest.raises(config.ConfigError, match=re.escape(message)):
            config.load(None, {name: value})
    # the bounds themselves are allowed where inclusive; no upper bound means infinity is fine
    params = config.load(None, {"min_keypoint_confidence": 1.0, "detector.detect_every": 0, "tracking.max_age": 1e9})
    assert params["min_keypoint_confidence"] == 1.0 and params["detector.detect_every"] == 0
