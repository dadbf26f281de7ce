"""One camera frame from ROS messages to ROS messages: the logic the node and the offline runner share.

``FrameProcessor.process(image, camera_info, depth, depth_info)`` reads the messages (:mod:`inputs`),
runs :class:`~abspose.pipeline.Pipeline` (detect2d -> depth -> lift -> fuse), the tracker, and builds the
outputs (:mod:`outputs`). A frame that cannot be used raises :class:`FrameError` with the reason (the
caller logs it, rate-limited, and skips the frame). Depth that cannot be used never costs the frame: it
runs monocular and the reason comes back in ``FrameResult.warnings``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from abspose.body_scale import LIFTER_ONLY, MEASURED_DEPTH, MEASURED_GROUND
from abspose.camera import CameraError, CameraModel
from abspose.depth import DepthError, depth_to_metres
from abspose.fuse import SOURCE_DEPTH, SOURCE_FUSED, SOURCE_GROUND, SOURCE_LIFTED, SOURCE_TRACK, Fused, rescale
from abspose.ground import GroundPlane, fit_floor
from abspose.image import ImageError
from abspose.pipeline import People, Pipeline
from abspose.ros import outputs
from abspose.ros.config import settings
from abspose.ros.inputs import check_header, depth_array, image_array
from abspose.ros.messages import MessageTypes
from abspose.track import ENDED, Tracker, keypoint_boxes


class FrameError(ValueError):
    """The frame is skipped; the message says why (bad image, uncalibrated or missing camera info...)."""


@dataclass
class FrameResult:
    """Outputs of one frame (messages are None when that output is switched off)."""

    stamp_ns: int
    frame_id: str
    people: list[outputs.Person]
    skeletons: Any = None
    markers: Any = None
    tf: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0  # processing time of this frame
    ground: str = ""  # where this frame's floor came from: "tf", "parameters", "depth" or "" (none)
    exposure: str = "as is"  # how the detector saw the image: "as is", "stretched" or "two looks" (dark frames)


def scales(people: People) -> np.ndarray:
    """[N, 3]: each person's scale, its relative σ and what measured it (body_scale.MEASURED_*, LIFTER_ONLY)."""
    src = people.source
    kind = torch.full((len(people),), LIFTER_ONLY, dtype=torch.float64)
    kind = torch.where((src == SOURCE_GROUND).any(1), MEASURED_GROUND, kind)
    kind = torch.where(((src == SOURCE_FUSED) | (src == SOURCE_DEPTH)).any(1), MEASURED_DEPTH, kind)
    return torch.stack([people.scale.double(), people.scale_sigma.double(), kind], -1).numpy()


class FrameProcessor:
    """Holds the models, the tracker and the output state of one camera stream."""

    def __init__(self, params: dict[str, Any], types: MessageTypes, pipeline: Pipeline | None = None) -> None:
        self.settings = settings(params)
        self.params = self.settings.params
        self.types = types
        self.pipeline = pipeline or Pipeline(self.settings.pipeline)
        self.tracker = Tracker(self.settings.tracking)
        self._last: dict[str, outputs.Person] = {}
        self._cameras: dict[tuple, CameraModel] = {}
        self._stamp: int | None = None  # ns, of the last frame processed
        self._floor: tuple[int, GroundPlane | None] | None = None  # (stamp ns, plane) of the last depth floor fit

    @property
    def device(self) -> str:
        return str(self.pipeline.device)

    def camera(self, msg: Any, what: str) -> CameraModel:
        """CameraModel of a CameraInfo message (cached by its content), or ``msg`` if it is one already."""
        if isinstance(msg, CameraModel):
            return msg
        if msg is None:
            raise FrameError(f"no {what} CameraInfo received yet")
        key = tuple(np.asarray(getattr(msg, n, getattr(msg, n.upper(), ())), np.float64).tobytes() for n in "kdrp")
        key += (int(msg.width), int(msg.height), str(msg.distortion_model))
        if key not in self._cameras:
            if len(self._cameras) > 8:
                self._cameras.clear()
            try:
                self._cameras[key] = CameraModel.from_camera_info(msg)
            except CameraError as exc:
                raise FrameError(f"{what} CameraInfo unusable: {exc}") from exc
        return self._cameras[key]

    def process(
        self, image: Any, info: Any, depth: Any = None, depth_info: Any = None, ground: GroundPlane | None = None
    ) -> FrameResult:
        """One frame; ``ground``: the floor in the image's optical frame from TF (the node's ``ground_frame``),
        else the ``ground.camera_*`` parameters or a floor fitted to the depth image serve."""
        start = time.perf_counter()
        try:
            stamp, frame_id = check_header(image.header, self.params["tracking.id_prefix"])
        except ImageError as exc:
            raise FrameError(f"image: {exc}") from exc
        camera = self.camera(info, "colour")
        try:
            array, encoding = image_array(image)
        except ImageError as exc:
            raise FrameError(f"image: {exc}") from exc
        warnings: list[str] = []
        # a gap in the stream (dropped frames, a paused or looped bag, stills far apart): the people tracked
        # in 2D are stale, so the detector looks afresh
        if self._stamp is not None and not 0 <= stamp - self._stamp <= self.settings.tracking.max_age * 1e9:
            self.pipeline.detector.reset()
        self._stamp = stamp
        depth_args = self._depth(depth, depth_info, warnings) if self.params["use_depth"] else {}
        plane, where = self._ground(stamp, ground, depth_args, camera, warnings)
        people = self._run(array, camera, encoding, depth_args, warnings, plane)
        result = self._outputs(stamp, frame_id, people)
        result.warnings, result.ground = warnings, where
        result.exposure = self.pipeline.detector.exposure
        result.seconds = time.perf_counter() - start
        return result

    def _depth(self, msg: Any, info: Any, warnings: list[str]) -> dict[str, Any]:
        if msg is None:
            return {}
        try:
            arr, enc = depth_array(msg)
            dcam = self.camera(info, "depth") if info is not None else None
        except (ImageError, DepthError, FrameError) as exc:
            warnings.append(f"depth ignored, running monocular: {exc}")
            return {}
        return {"depth": arr, "depth_encoding": enc, "depth_camera": dcam}

    def _ground(
        self, stamp: int, given: GroundPlane | None, depth: dict, camera: CameraModel, warnings: list[str]
    ) -> tuple[GroundPlane | None, str]:
        """The floor for this frame and where it came from: TF, the parameters, or the depth image (fitted at
        most every ``ground.refit_period`` s, people's last boxes left out)."""
        g = self.settings.ground
        if not g.contact:
            return None, ""
        if given is not None:
            return given, "tf"
        if g.camera_height > 0:
            return GroundPlane.from_height_pitch(g.camera_height, math.radians(g.camera_pitch)), "parameters"
        if not depth or not g.from_depth:
            return None, ""
        if self._floor is None or not 0 <= stamp - self._floor[0] < g.refit_period * 1e9:
            dcam = depth["depth_camera"] or camera
            boxes = np.array([tr.box for tr in self.tracker.tracks]).reshape(-1, 4)
            ratio = np.array(dcam.image_size * 2, np.float64) / np.array(camera.image_size * 2, np.float64)
            plane = None
            try:  # a depth image the readout refuses says why there; here it only costs the floor
                dm = depth_to_metres(depth["depth"], depth["depth_encoding"], self.settings.pipeline.depth.scale)
                if tuple(dm.shape[::-1]) == dcam.image_size:
                    plane = fit_floor(dm, dcam, boxes * ratio)
            except (DepthError, ValueError) as exc:
                warnings.append(f"ground: no floor fit to the depth image ({exc})")
            self._floor = (stamp, plane)
        return self._floor[1], "depth" if self._floor[1] is not None else ""

    def _run(
        self,
        array: np.ndarray,
        camera: CameraModel,
        encoding: str,
        depth: dict,
        warnings: list[str],
        ground: GroundPlane | None = None,
    ) -> People:
        try:
            return self.pipeline(array, camera, encoding, **depth, ground=ground).cpu()
        except DepthError as exc:
            warnings.append(f"depth ignored, running monocular: {exc}")
        except (ImageError, CameraError) as exc:
            raise FrameError(str(exc)) from exc
        except Exception as exc:  # any failure of the depth path costs the depth, never the frame
            if not depth:
                raise
            warnings.append(f"depth readout failed ({type(exc).__name__}: {exc}), running monocular")
        try:
            return self.pipeline(array, camera, encoding, ground=ground).cpu()
        except (ImageError, CameraError) as exc:
            raise FrameError(str(exc)) from exc

    def _outputs(self, stamp: int, frame_id: str, people: People) -> FrameResult:
        t = stamp * 1e-9
        kp, conf = people.keypoints.double().numpy(), people.confidence.double().numpy()
        boxes = keypoint_boxes(kp, conf >= self.settings.pipeline.min_confidence)
        roots, joints = people.root.double().numpy(), people.joints.double().numpy()
        tracks = self.tracker.update(t, roots, boxes, joints, scales(people))
        uncertainty, source = self._track_scaled(people, tracks)
        shown, ended = [], []
        for tr in tracks:
            d = tr.detection
            if d >= 0:
                person = outputs.Person(
                    tr.id,
                    tr.number,
                    tr.state,
                    float(people.score[d]),
                    tr.root.copy(),
                    tr.velocity.copy(),
                    tr.joints.copy(),
                    uncertainty[d],
                    source[d],
                    kp[d],
                    conf[d],
                )
                self._last[tr.id] = person  # the last observation, for coasting
            else:  # coasting: the last observation carried along the predicted root; ended: where last seen
                last = self._last[tr.id]
                age = max(0.0, t - tr.last_seen)
                at = t if tr.state != ENDED else tr.last_seen
                person = outputs.Person(
                    tr.id,
                    tr.number,
                    tr.state,
                    last.score,
                    tr.predicted_root(at),
                    tr.velocity.copy(),
                    tr.predicted_joints(at),
                    last.uncertainty + 0.5 * age,
                    last.source,
                    np.full_like(last.keypoints, np.nan),
                    np.zeros_like(last.confidence),
                )
            (ended if tr.state == ENDED else shown).append(person)
        live = {tr.id for tr in self.tracker.tracks}
        self._last = {k: v for k, v in self._last.items() if k in live}  # ended and dropped tentative tracks
        return self._messages(stamp, frame_id, shown, ended)

    @staticmethod
    def _track_scaled(people: People, tracks: list) -> tuple[np.ndarray, np.ndarray]:
        """Uncertainty [N, J] m and source [N, J] of the detections, for those a track's body scale moved."""
        n = len(people)
        factor, sigma = torch.ones(n, dtype=torch.float64), people.scale_sigma.double().clone()
        for tr in tracks:
            if tr.detection >= 0 and tr.factor != 1.0:
                factor[tr.detection], sigma[tr.detection] = tr.factor, tr.scale_sigma
        moved = factor != 1.0
        if not moved.any():  # the usual frame: nothing to redo
            return people.uncertainty.double().numpy(), people.source.numpy()
        fused = Fused(
            people.joints.double(), people.uncertainty.double(), people.source, people.root.double(),
            people.scale.double(), people.scale_sigma.double(),
        )  # fmt: skip
        unc = torch.where(moved[:, None], rescale(fused, factor, sigma).uncertainty, fused.uncertainty)
        lifted = (people.source == SOURCE_LIFTED) | (people.source == SOURCE_GROUND)
        source = torch.where(moved[:, None] & lifted, SOURCE_TRACK, people.source).to(torch.uint8)
        return unc.numpy(), source.numpy()

    def _messages(self, stamp: int, frame_id: str, shown: list, ended: list) -> FrameResult:
        p, T = self.params, self.types
        hdr = outputs.header(T, stamp, frame_id)
        result = FrameResult(stamp, frame_id, shown + ended)
        if p["publish.skeletons"]:
            result.skeletons = outputs.skeleton_array(T, hdr, shown + ended)
        if p["publish.markers"]:
            result.markers = outputs.marker_array(
                T, hdr, shown, ended, p["publish.marker_lifetime"], p["publish.tentative"]
            )
        if p["publish.tf"]:
            result.tf = outputs.transforms(T, hdr, shown, p["publish.joint_tf"], p["publish.tentative"])
        return result
