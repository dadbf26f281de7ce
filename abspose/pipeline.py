"""One frame through the whole core: camera -> detect2d -> undistort -> depth readout -> lift -> fuse.

:class:`Pipeline` owns the models; ``pipeline(image, camera, depth=...)`` returns :class:`People` for one
frame. No ROS here: the node and the offline runner both call it. Bad input raises ``ImageError``,
``DepthError`` or ``CameraError`` with what is wrong, so the caller can log it and skip the frame.
Tracking (ids, smoothing, velocity) comes after, in :mod:`abspose.track`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from abspose.camera import CameraModel
from abspose.depth import DepthConfig, Readout, read_registered
from abspose.detect2d import BlazePose, Options
from abspose.fuse import FuseConfig, Fused, lift_with_depth, relative_error
from abspose.ground import ContactConfig, GroundPlane, contact, place_on_ground
from abspose.lifter import Lifter


@dataclass
class PipelineConfig:
    device: str | None = None  # None: cuda when available
    half: bool = False  # fp16 detector on CUDA
    bf16: bool = False  # bfloat16 NanoDet on a CPU that computes it natively (AVX-512 BF16 / AMX); fp32 elsewhere
    compile: bool = False  # torch.compile the detector's models (slow start, faster frames)
    min_confidence: float = 0.5  # 2D keypoints below this are missing
    use_depth: bool = True  # use a depth image when one is given
    depth_features: bool = True  # feed the readouts fusion accepted to the lifter (else: fusion only)
    lifter_weights: str | None = None  # None: the shipped checkpoint
    flip_average: bool = True  # the lifter also lifts the mirror image and averages (docs/lifter.md)
    detector: Options = field(default_factory=Options)
    depth: DepthConfig = field(default_factory=DepthConfig)
    fuse: FuseConfig = field(default_factory=FuseConfig)
    contact: ContactConfig = field(default_factory=ContactConfig)  # feet on the ground plane, when one is given


@dataclass
class People:
    """N people in one frame. keypoints [N, J, 2] raw image px, confidence [N, J], score [N], joints
    [N, J, 3] m (camera optical frame), uncertainty [N, J] m, source [N, J] (fuse.SOURCE_*), root [N, 3] m,
    depth [N, J] m surface readouts (NaN: none), scale [N] and scale_sigma [N]: the factor depth or the
    ground contact applied to the lifted person and its relative 1-σ (1 and the lifter's own: monocular)."""

    keypoints: torch.Tensor
    confidence: torch.Tensor
    score: torch.Tensor
    joints: torch.Tensor
    uncertainty: torch.Tensor
    source: torch.Tensor
    root: torch.Tensor
    depth: torch.Tensor
    scale: torch.Tensor
    scale_sigma: torch.Tensor

    def __len__(self) -> int:
        return int(self.joints.shape[0])

    @classmethod
    def of(
        cls, keypoints: torch.Tensor, confidence: torch.Tensor, score: torch.Tensor, f: Fused, surface: torch.Tensor
    ) -> People:
        """A frame's 2D detections (raw px, confidence, score) with their fused 3D and depth readouts."""
        return cls(
            keypoints, confidence, score, f.joints, f.uncertainty, f.source, f.root, surface, f.scale, f.scale_sigma
        )

    def cpu(self) -> People:
        return People(**{k: v.cpu() for k, v in self.__dict__.items()})


class Pipeline:
    """Models loaded once; call per frame."""

    def __init__(
        self, cfg: PipelineConfig | None = None, detector: BlazePose | None = None, lifter: Lifter | None = None
    ) -> None:
        self.cfg = cfg or PipelineConfig()
        self.device = torch.device(self.cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.detector = detector or BlazePose(
            self.device, half=self.cfg.half, options=self.cfg.detector, compile=self.cfg.compile, bf16=self.cfg.bf16
        )
        self.lifter = lifter or Lifter.load(self.cfg.lifter_weights, self.device)
        self.lifter.flip_average = self.cfg.flip_average

    def __call__(
        self,
        image: np.ndarray | torch.Tensor,
        camera: CameraModel,
        encoding: str | None = None,
        depth: np.ndarray | torch.Tensor | None = None,
        depth_encoding: str | None = None,
        depth_camera: CameraModel | None = None,
        ground: GroundPlane | None = None,
    ) -> People:
        """One frame; ``ground``: the floor in this camera's optical frame, if known (feet on it place people
        that depth did not)."""
        h, w = image.shape[:2]
        camera.check_image(w, h)
        poses = self.detector(image, encoding)
        conf = poses.confidence
        ideal = camera.undistort_pixels(poses.keypoints.double()).float()  # NaN where not invertible
        usable = (conf >= self.cfg.min_confidence) & torch.isfinite(ideal).all(-1)
        K = torch.as_tensor(camera.K, dtype=torch.float32, device=self.device)
        readout = None
        if depth is not None and self.cfg.use_depth:
            readout = self.read_depth(ideal, usable, camera, depth, depth_encoding, depth_camera)
        confidence = torch.where(usable, conf, torch.zeros_like(conf))
        fused: Fused = lift_with_depth(
            self.lifter, ideal, confidence, K, readout, self.cfg.min_confidence, self.cfg.depth_features, self.cfg.fuse
        )
        if ground is not None:
            found = contact(fused.joints, relative_error(fused), ideal, usable, K, ground, (w, h), self.cfg.contact)
            fused = place_on_ground(fused, found, self.cfg.contact)
        surface = readout.surface if readout is not None else torch.full_like(conf, float("nan"))
        return People.of(poses.keypoints, conf, poses.score, fused, surface)

    def read_depth(
        self,
        ideal: torch.Tensor,
        usable: torch.Tensor,
        camera: CameraModel,
        depth: np.ndarray | torch.Tensor,
        encoding: str | None,
        depth_camera: CameraModel | None,
    ) -> Readout:
        """Readouts for ideal colour keypoints [N, J, 2] from a depth image registered to the colour camera."""
        return read_registered(ideal, usable, camera, depth, encoding, depth_camera, self.cfg.depth, self.device)
