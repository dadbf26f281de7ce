"""Node and runner parameters: one flat table of defaults, read from a ROS 2 parameter YAML.

The names are the node's ROS parameters (dots = nesting in the YAML), so ``config/abspose.yaml`` works
both for ``ros2 launch`` and for ``abspose run --config``. :func:`settings` turns the flat values into
the core's config objects. Units: seconds, metres, pixels, Hz.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from abspose.depth import DepthConfig
from abspose.detect2d import Options
from abspose.fuse import FuseConfig
from abspose.pipeline import PipelineConfig
from abspose.smoothing import OneEuroConfig
from abspose.track import TrackConfig

NODE_NAME = "abspose"

DEFAULTS: dict[str, Any] = {
    # inputs (relative names resolve in the node's namespace; remap or set camera_namespace in the launch)
    "image_topic": "image",
    "camera_info_topic": "camera_info",
    "depth_topic": "depth/image",
    "depth_camera_info_topic": "depth/camera_info",
    "use_depth": True,
    "qos": "sensor_data",  # sensor_data (best effort) or reliable
    "sync_slop": 0.05,  # s: image <-> camera_info pairing
    "depth_slop": 0.1,  # s: largest image <-> depth stamp difference; else the frame runs without depth
    "queue_size": 10,
    # compute
    "device": "",  # "" = cuda when available, else cpu; or "cpu", "cuda:0"
    "fp16": False,  # half precision detector on CUDA
    "bf16": False,  # bfloat16 NanoDet on a CPU with native bf16 (AVX-512 BF16 / AMX): 2x faster; else fp32
    "compile": False,  # torch.compile the detector: 1-2 minutes more at start-up, ~15 % faster frames on CPU
    # 2D detection
    "detector.model": "nanodet",  # person proposals: nanodet (boxes on the frame + tiles) or blazepose (mediapipe's)
    "detector.person_score": 0.3,  # nanodet: person box score threshold
    "detector.tiles": 2,  # nanodet: square tiles along the long side besides the whole frame (small, far people)
    "detector.adaptive_tiles": True,  # ... only where the whole frame shows uncertain or small people (False: always)
    "detector.tile_max": 960.0,  # px: largest tile; larger frames get rows of smaller tiles (0: no limit)
    "detector.orient": True,  # nanodet: lying / turned people get rotated crops (BlazePose's detector on wide boxes)
    # nanodet: a skeleton from a doubtful box (< 0.45) whose seen limbs lie on BlazePose's person mask less than
    # this on average is drawn over an object (a robot): dropped (0: off; the mask is computed for such crops only)
    "detector.person_mask": 0.55,
    # a frame whose brightest pixels (99.5th percentile grey level, 0..255) lie below this is stretched to the full
    # range before detection (a dim room, a 10/12-bit mono16 camera); one whose 95th (or 75th) percentile does, with
    # lights 4 x brighter on the rest (lamps, windows, lit people), gets a second, stretched look (nanodet); 0: off
    "detector.dark_level": 32.0,
    "detector.min_score": 0.5,  # blazepose: its detector's score threshold
    "detector.max_people": 0,  # 0 = no limit
    "detector.reuse_rois": True,  # run the person detector every few frames, track ROIs in between
    "detector.detect_every": 10,
    "min_keypoint_confidence": 0.5,
    # 3D lifting
    "lifter.flip_average": True,  # also lift the mirror image and average (1.4 mm MPJPE, ~1 % MRPE better)
    # depth readout
    "depth.scale": 0.0,  # m per unit; 0 = by encoding (16UC1 mm, 32FC1 m)
    "depth.noise_k": 1.5e-3,  # sensor noise sigma = k z^2 (1/m)
    "depth.features": True,  # depth readouts as lifter inputs (else fusion only)
    "depth.surface_model": True,  # joint-behind-readout offsets from the lifted body (docs/depth.md), not radii
    "depth.refine_relative": False,  # the pelvis refinement weighs its readout against its relative error only
    "depth.orient": True,  # with surface_model: the lifted body turned to the depth image's torso plane
    # ground plane: feet on the floor give a person's distance where depth does not (docs/lifter.md)
    "ground_frame": "",  # TF frame on the floor, z up (e.g. base_footprint); "" = none
    "ground.tf_timeout": 0.05,  # s to wait for the camera -> ground_frame transform at the image stamp
    "ground.camera_height": 0.0,  # m above the floor, when there is no ground_frame; 0 = not known
    "ground.camera_pitch": 0.0,  # deg, down positive, with ground.camera_height
    "ground.from_depth": True,  # else: the floor fitted to the depth image (RANSAC), when it shows one
    "ground.refit_period": 1.0,  # s between floor fits to the depth image
    "ground.contact": True,  # use the feet on the floor at all
    # tracking and smoothing
    "tracking.max_distance": 1.0,
    "tracking.min_iou": 0.3,
    "tracking.confirm_hits": 3,
    "tracking.max_age": 1.0,
    "tracking.id_prefix": "p",
    "tracking.body_scale": True,  # a person's measured scale (depth, floor) carries over frames without one
    "smoothing.enabled": True,
    "smoothing.min_cutoff": 1.0,
    "smoothing.beta": 0.8,
    "smoothing.d_cutoff": 1.0,
    # outputs
    "publish.skeletons": True,
    "publish.markers": True,
    "publish.tf": True,
    "publish.joint_tf": False,  # per-joint frames <joint>_<id> under body_<id>
    "publish.debug_image": False,
    "publish.marker_lifetime": 1.0,  # s; 0 = until deleted
    "publish.tentative": False,  # markers and TF also for unconfirmed tracks
    "autostart": True,  # node: configure and activate itself at start (else drive it with ros2 lifecycle)
    "diagnostics_period": 1.0,
    "warn_period": 5.0,  # s between repeats of the same warning
}

# Allowed values: numbers within [low, high] (low excluded where the third entry is True), strings from a
# list. A value outside would run without error and publish nonsense (a zero One-Euro cut-off divides by
# zero and holds a still person's skeleton where it first was; a confidence threshold above 1 hides
# everyone), so it is refused like a wrong type.
_ANY, _POSITIVE, _UNIT = (0.0, math.inf, False), (0.0, math.inf, True), (0.0, 1.0, False)
LIMITS: dict[str, tuple[float, float, bool]] = {
    "sync_slop": _ANY,
    "depth_slop": _ANY,
    "queue_size": (1, math.inf, False),
    "detector.min_score": _UNIT,
    "detector.person_score": _UNIT,
    "detector.tiles": (0, 8, False),
    "detector.person_mask": _UNIT,
    "detector.dark_level": (0.0, 255.0, False),
    "detector.tile_max": _ANY,
    "detector.max_people": _ANY,
    "detector.detect_every": _ANY,
    "min_keypoint_confidence": _UNIT,
    "depth.scale": _ANY,
    "depth.noise_k": _ANY,
    "ground.tf_timeout": _ANY,
    "ground.camera_height": (0.0, 20.0, False),
    "ground.camera_pitch": (-90.0, 90.0, False),
    "ground.refit_period": _ANY,
    "tracking.max_distance": _POSITIVE,
    "tracking.min_iou": _UNIT,
    "tracking.confirm_hits": _ANY,
    "tracking.max_age": _ANY,
    "smoothing.min_cutoff": _POSITIVE,
    "smoothing.beta": _ANY,
    "smoothing.d_cutoff": _POSITIVE,
    "publish.marker_lifetime": _ANY,
    "diagnostics_period": _POSITIVE,
    "warn_period": _ANY,
}
CHOICES: dict[str, tuple[str, ...]] = {"qos": ("sensor_data", "reliable"), "detector.model": ("nanodet", "blazepose")}
# Parameters a running node applies at once when set (ros2 param set); the others at the next configure.
LIVE = frozenset(
    {"depth_slop", "warn_period"}
    | {f"publish.{n}" for n in ("skeletons", "markers", "tf", "joint_tf", "marker_lifetime", "tentative")}
)


class ConfigError(ValueError):
    """A parameter file or value that cannot be used; the message names the file and the key."""


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def check(params: dict[str, Any], where: str = "parameters") -> dict[str, Any]:
    """Defaults overridden by ``params``; unknown names and wrong types raise ConfigError."""
    merged = dict(DEFAULTS)
    for name, value in params.items():
        if name not in DEFAULTS:
            raise ConfigError(f"{where}: unknown parameter '{name}' (known: {', '.join(DEFAULTS)})")
        want = type(DEFAULTS[name])
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: '{name}' must be {want.__name__}, got {value!r}")
        _check_range(name, value, where)
        merged[name] = value
    return merged


def refusal(current: dict[str, Any], changes: dict[str, Any]) -> str | None:
    """Why setting ``changes`` on top of ``current`` (e.g. ``ros2 param set``) must be refused; None if fine."""
    try:
        check({**current, **changes}, "parameter set")
    except ConfigError as exc:
        return str(exc)
    return None


def _check_range(name: str, value: Any, where: str) -> None:
    if name == "device" and not re.fullmatch(r"(cpu|cuda(:\d+)?|mps)?", value):
        raise ConfigError(f"{where}: 'device' must be '', cpu, cuda or cuda:N, got {value!r}")
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f"{where}: '{name}' must be one of {', '.join(CHOICES[name])}, got {value!r}")
    if name in LIMITS:
        low, high, low_excluded = LIMITS[name]
        if not math.isfinite(value):  # inf max_age keeps every track forever, inf beta makes NaN joints
            raise ConfigError(f"{where}: '{name}' must be a finite number, got {value!r}")
        if value < low or value > high or (low_excluded and value == low):
            bounds = f"> {low:g}" if low_excluded else f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
            raise ConfigError(f"{where}: '{name}' must be {bounds}, got {value!r}")


def load(path: str | Path | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parameters from a ROS 2 parameter YAML (``<node>: ros__parameters: ...``, any node name or
    ``/**``) with ``overrides`` on top. ``path=None``: the defaults."""
    params: dict[str, Any] = {}
    if path is not None:
        try:
            tree = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read parameters ({' '.join(str(exc).split())})") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping '<node>: ros__parameters: ...', got {type(tree).__name__}")
        sections = [v["ros__parameters"] for v in tree.values() if isinstance(v, dict) and "ros__parameters" in v]
        if len(sections) != 1:
            raise ConfigError(f"{path}: expected one '<node>: ros__parameters:' section, found {len(sections)}")
        if not isinstance(sections[0], dict):
            raise ConfigError(f"{path}: 'ros__parameters' must be a mapping, got {type(sections[0]).__name__}")
        params = _flatten(sections[0])
    params = check(params, str(path or "defaults"))
    return check({**{k: v for k, v in params.items() if v != DEFAULTS[k]}, **(overrides or {})}, "overrides")


def parse_override(text: str) -> tuple[str, Any]:
    """'name=value' (value parsed as YAML: 3, 0.5, true, text) -> (name, value)."""
    name, sep, value = text.partition("=")
    if not sep:
        raise ConfigError(f"expected NAME=VALUE, got '{text}'")
    try:
        return name.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"-p {text}: not a plain YAML value ({str(exc).splitlines()[0]})") from exc


@dataclass
class GroundSettings:
    """Where a frame's floor comes from, in this order: TF (``frame``, looked up by the node or read from a
    bag's /tf), a fixed camera height (m) and pitch (deg, down positive), the depth image (RANSAC, refitted
    every ``refit_period`` s); ``contact`` off: no floor at all."""

    frame: str = ""
    tf_timeout: float = 0.05
    camera_height: float = 0.0
    camera_pitch: float = 0.0
    from_depth: bool = True
    refit_period: float = 1.0
    contact: bool = True


@dataclass
class Settings:
    """The flat parameters as the core's config objects."""

    pipeline: PipelineConfig
    tracking: TrackConfig
    params: dict[str, Any]
    ground: GroundSettings


def settings(params: dict[str, Any]) -> Settings:
    p = check(params)
    detector = Options(
        detector=p["detector.model"],
        min_person_score=p["detector.person_score"],
        tiles=p["detector.tiles"],
        adaptive_tiles=p["detector.adaptive_tiles"],
        tile_max=p["detector.tile_max"],
        orient=p["detector.orient"],
        person_mask=p["detector.person_mask"],
        dark_level=p["detector.dark_level"],
        min_detection_score=p["detector.min_score"],
        max_people=p["detector.max_people"],
        tracking=p["detector.reuse_rois"],
        detect_every=p["detector.detect_every"],
    )
    depth = DepthConfig(scale=p["depth.scale"] or None, noise_k=p["depth.noise_k"])
    pipeline = PipelineConfig(
        device=p["device"] or None,
        half=p["fp16"],
        bf16=p["bf16"],
        compile=p["compile"],
        min_confidence=p["min_keypoint_confidence"],
        use_depth=p["use_depth"],
        flip_average=p["lifter.flip_average"],
        depth_features=p["depth.features"],
        detector=detector,
        depth=depth,
        fuse=FuseConfig(
            surface_model=p["depth.surface_model"], refine_relative=p["depth.refine_relative"], orient=p["depth.orient"]
        ),
    )
    euro = OneEuroConfig(p["smoothing.min_cutoff"], p["smoothing.beta"], p["smoothing.d_cutoff"])
    tracking = TrackConfig(
        max_distance=p["tracking.max_distance"],
        min_iou=p["tracking.min_iou"],
        confirm_hits=p["tracking.confirm_hits"],
        max_age=p["tracking.max_age"],
        smoothing=p["smoothing.enabled"],
        one_euro=euro,
        id_prefix=p["tracking.id_prefix"],
        body_scale=p["tracking.body_scale"],
    )
    ground = GroundSettings(
        p["ground_frame"],
        p["ground.tf_timeout"],
        p["ground.camera_height"],
        p["ground.camera_pitch"],
        p["ground.from_depth"],
        p["ground.refit_period"],
        p["ground.contact"],
    )
    return Settings(pipeline, tracking, p, ground)


def write_yaml(path: str | Path, params: dict[str, Any] | None = None, node: str = "/**") -> None:
    """Write parameters as a ROS 2 parameter YAML (nested by the dots); ``/**`` matches any node name and namespace."""
    tree: dict[str, Any] = {}
    for name, value in (params or DEFAULTS).items():
        *parents, leaf = name.split(".")
        d = tree
        for part in parents:
            d = d.setdefault(part, {})
        d[leaf] = value
    Path(path).write_text(yaml.safe_dump({node: {"ros__parameters": tree}}, sort_keys=False))
