"""One camera frame from ROS messages to ROS messages: the logic the node and the offline runner share.

``FrameProcessor.process(image, camera_info, depth, depth_info)`` reads the messages (:mod:`inputs`),
runs :class:`~abspose.pipeline.Pipeline` (detect2d -> depth -> lift -> fuse), the tracker, and builds the
outputs (:mod:`outputs`). A frame that cannot be used raises :class:`FrameError` with the reason (the
caller logs it, rate-limited, and skips the frame). Depth that cannot be used never costs the frame: it
runs monocular and the reason comes back in ``FrameResult.warnings``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from abspose.camera import CameraError, CameraModel
from abspose.depth import DepthError
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

    def process(self, image: Any, info: Any, depth: Any = None, depth_info: Any = None) -> FrameResult:
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
        people = self._run(array, camera, encoding, depth_args, warnings)
        result = self._outputs(stamp, frame_id, people)
        result.warnings = warnings
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

    def _run(self, array: np.ndarray, camera: CameraModel, encoding: str, depth: dict, warnings: list[str]) -> People:
        try:
            return self.pipeline(array, camera, encoding, **depth).cpu()
        except DepthError as exc:
            warnings.append(f"depth ignored, running monocular: {exc}")
        except (ImageError, CameraError) as exc:
            raise FrameError(str(exc)) from exc
        except Exception as exc:  # any failure of the depth path costs the depth, never the frame
            if not depth:
                raise
            warnings.append(f"depth readout failed ({type(exc).__name__}: {exc}), running monocular")
        try:
            return self.pipeline(array, camera, encoding).cpu()
        except (ImageError, CameraError) as exc:
            raise FrameError(str(exc)) from exc

    def _outputs(self, stamp: int, frame_id: str, people: People) -> FrameResult:
        t = stamp * 1e-9
        kp, conf = people.keypoints.double().numpy(), people.confidence.double().numpy()
        boxes = keypoint_boxes(kp, conf >= self.settings.pipeline.min_confidence)
        tracks = self.tracker.update(t, people.root.double().numpy(), boxes, people.joints.double().numpy())
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
                    people.uncertainty[d].double().numpy(),
                    people.source[d].numpy(),
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
