"""Every node/runner parameter reaches the code it configures: one row per entry of config.DEFAULTS.

A row says where a changed value must show: in the core's config objects (``settings``), in what a frame
publishes (``output``), in the node core (``core``), or, for pure ROS wiring, in the node script.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import pytest

from abspose.ros import config
from abspose.ros.node_core import NodeCore

from conftest import REPO


def settings(path: str, expect: Callable[[Any], Any] = lambda v: v):
    return ("settings", path, expect)


def output(probe: Callable[[Any], Any]):
    return ("output", probe, None)


def core(probe: Callable[[NodeCore], Any]):
    return ("core", probe, None)


NODE = ("node", None, None)

# name -> (a valid value other than the default, where it must show)
REACH: dict[str, tuple[Any, tuple]] = {
    "image_topic": ("cam/rgb", NODE),
    "camera_info_topic": ("cam/info", NODE),
    "depth_topic": ("cam/depth", core(lambda c: (c._pair_depth(0), c.stats.last_monocular)[1])),
    "depth_camera_info_topic": ("cam/depth_info", NODE),
    "use_depth": (False, settings("pipeline.use_depth")),
    "qos": ("reliable", NODE),
    "sync_slop": (0.2, NODE),
    "depth_slop": (0.3, core(lambda c: c.depth.add(200_000_000, "d") or c._pair_depth(0)[0])),
    "queue_size": (3, NODE),
    "device": ("cpu", settings("pipeline.device")),
    "fp16": (True, settings("pipeline.half")),
    "bf16": (True, settings("pipeline.bf16")),
    "compile": (True, settings("pipeline.compile")),
    "detector.model": ("blazepose", settings("pipeline.detector.detector")),
    "detector.person_score": (0.6, settings("pipeline.detector.min_person_score")),
    "detector.tiles": (0, settings("pipeline.detector.tiles")),
    "detector.adaptive_tiles": (False, settings("pipeline.detector.adaptive_tiles")),
    "detector.tile_max": (640.0, settings("pipeline.detector.tile_max")),
    "detector.orient": (False, settings("pipeline.detector.orient")),
    "detector.person_mask": (0.0, settings("pipeline.detector.person_mask")),
    "detector.dark_level": (0.0, settings("pipeline.detector.dark_level")),
    "detector.min_score": (0.7, settings("pipeline.detector.min_detection_score")),
    "detector.max_people": (2, settings("pipeline.detector.max_people")),
    "detector.reuse_rois": (False, settings("pipeline.detector.tracking")),
    "detector.detect_every": (4, settings("pipeline.detector.detect_every")),
    "min_keypoint_confidence": (0.3, settings("pipeline.min_confidence")),
    "lifter.flip_average": (False, settings("pipeline.flip_average")),
    "depth.scale": (0.001, settings("pipeline.depth.scale")),
    "depth.noise_k": (3e-3, settings("pipeline.depth.noise_k")),
    "depth.features": (False, settings("pipeline.depth_features")),
    "depth.surface_model": (False, settings("pipeline.fuse.surface_model")),
    "depth.refine_relative": (True, settings("pipeline.fuse.refine_relative")),
    "depth.orient": (False, settings("pipeline.fuse.orient")),
    "ground_frame": ("base_footprint", settings("ground.frame")),
    "ground.tf_timeout": (0.2, settings("ground.tf_timeout")),
    "ground.camera_height": (1.2, output(lambda r: r.ground)),
    "ground.camera_pitch": (10.0, settings("ground.camera_pitch")),
    "ground.from_depth": (False, settings("ground.from_depth")),
    "ground.refit_period": (2.0, settings("ground.refit_period")),
    "ground.contact": (False, settings("ground.contact")),
    "tracking.body_scale": (False, settings("tracking.body_scale")),
    "tracking.max_distance": (0.5, settings("tracking.max_distance")),
    "tracking.min_iou": (0.5, settings("tracking.min_iou")),
    "tracking.confirm_hits": (1, settings("tracking.confirm_hits")),
    "tracking.max_age": (2.0, settings("tracking.max_age")),
    "tracking.id_prefix": ("person", output(lambda r: [s.id for s in r.skeletons.skeletons])),
    "smoothing.enabled": (False, settings("tracking.smoothing")),
    "smoothing.min_cutoff": (2.0, settings("tracking.one_euro.min_cutoff")),
    "smoothing.beta": (0.1, settings("tracking.one_euro.beta")),
    "smoothing.d_cutoff": (2.0, settings("tracking.one_euro.d_cutoff")),
    "publish.skeletons": (False, output(lambda r: r.skeletons is None)),
    "publish.markers": (False, output(lambda r: r.markers is None)),
    "publish.tf": (False, output(lambda r: len(r.tf))),
    "publish.joint_tf": (True, output(lambda r: sorted(t.child_frame_id for t in r.tf))),
    "publish.debug_image": (True, NODE),
    "publish.marker_lifetime": (
        2.5,
        output(lambda r: {(m.lifetime.sec, m.lifetime.nanosec) for m in r.markers.markers}),
    ),
    "publish.tentative": (True, output(lambda r: len(r.tf))),
    "autostart": (False, NODE),
    "diagnostics_period": (2.0, NODE),
    "warn_period": (1.0, core(lambda c: c.throttle.period)),
}
# defaults under which a changed output parameter can show (a confirmed person; tentative needs 3 hits)
OUTPUT_BASE = {"tracking.confirm_hits": 1, "use_depth": False}


def test_every_parameter_has_a_row():
    assert set(REACH) == set(config.DEFAULTS)
    for name, (value, _) in REACH.items():
        assert value != config.DEFAULTS[name]
        config.check({name: value})  # a valid value


@pytest.mark.parametrize("name", [n for n, (_, (kind, _, _)) in REACH.items() if kind == "settings"])
def test_parameter_reaches_the_core_config(name):
    value, (_, path, expect) = REACH[name]
    before = attrgetter(path)(config.settings(config.load(None)))
    after = attrgetter(path)(config.settings(config.load(None, {name: value})))
    assert after == expect(value) and after != before


@pytest.mark.parametrize("name", [n for n, (_, (kind, _, _)) in REACH.items() if kind == "output"])
def test_parameter_changes_what_a_frame_publishes(name, bag_frame, make):
    image, info, _ = bag_frame
    value, (_, probe, _) = REACH[name]
    base = {**OUTPUT_BASE, "tracking.confirm_hits": 3} if name == "publish.tentative" else OUTPUT_BASE
    before = probe(make(**base).process(image, info))
    after = probe(make(**{**base, name: value}).process(image, info))
    assert after != before, f"{name}={value!r} changed nothing: {before!r}"


@pytest.mark.parametrize("name", [n for n, (_, (kind, _, _)) in REACH.items() if kind == "core"])
def test_parameter_changes_what_the_node_core_does(name, make):
    value, (_, probe, _) = REACH[name]
    seen = []
    for overrides in ({}, {name: value}):
        node = NodeCore(lambda level, text: None)
        assert node.configure({**OUTPUT_BASE, **overrides}, make(**OUTPUT_BASE))
        seen.append(probe(node))
    assert seen[0] != seen[1], f"{name}={value!r} changed nothing: {seen[0]!r}"


def test_node_wiring_parameters_are_read_by_the_node_script():
    text = (REPO / "scripts" / "abspose_node").read_text()
    read = set(re.findall(r'p\["([a-z_.0-9]+)"\]', text)) | set(re.findall(r'get_parameter\("([a-z_.0-9]+)"\)', text))
    wiring = {n for n, (_, (kind, _, _)) in REACH.items() if kind == "node"}
    assert wiring <= read, wiring - read
