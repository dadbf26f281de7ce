"""Camera model from sensor_msgs/CameraInfo fields: distortion, projection, canonical focal length.

Frames and units: points are in the camera's optical frame (REP-103: x right, y down, z forward), metres.
Pixels are those of the *published* image (after binning and ROI, as CameraInfo describes it). "Ideal"
pixels are undistorted pixels of the same image under the pinhole ``K`` returned by :attr:`CameraModel.K`
(the unrectified camera: R and P are kept but only matter for stereo rectification, which we do not do).

Distortion models (OpenCV conventions, as ROS uses them): ``plumb_bob`` (k1 k2 p1 p2 k3),
``rational_polynomial`` (k1 k2 p1 p2 k3 k4 k5 k6), ``equidistant`` (fisheye k1 k2 k3 k4).
All maths runs in torch on the input's device, in float64 internally.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

# Largest number of coefficients each model takes (shorter D vectors are zero-padded).
DISTORTION_MODELS: dict[str, int] = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
_NEWTON_STEPS = 20
_NEWTON_TOL = 1e-12  # residual (normalized units, ~1e-9 px) below which undistortion stops early


class CameraError(ValueError):
    """A CameraInfo that cannot be used, with what is wrong in the message."""


class UncalibratedCameraError(CameraError):
    """CameraInfo without a usable K (all zeros, or non-positive focal lengths)."""


class UnsupportedDistortionError(CameraError):
    """A distortion model abspose does not implement, or a D vector that does not fit it."""


def _field(msg: Any, *names: str, default: Any = None) -> Any:
    """Read a field by its ROS 2 (lower-case) or ROS 1 / JSON (upper-case) name from a message or dict."""
    for name in names:
        if isinstance(msg, Mapping):
            if name in msg:
                return msg[name]
        elif hasattr(msg, name):
            return getattr(msg, name)
    return default


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of one camera. Build it with :meth:`from_camera_info`; the constructor validates."""

    k_full: np.ndarray  # [3,3] K of the full-resolution sensor, pixels
    d: np.ndarray  # distortion coefficients, padded to the model's length
    distortion_model: str
    width: int  # full-resolution sensor size, pixels
    height: int
    r: np.ndarray = field(default_factory=lambda: np.eye(3))
    p: np.ndarray = field(default_factory=lambda: np.zeros((3, 4)))
    binning_x: int = 1
    binning_y: int = 1
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)  # x_offset, y_offset, width, height (0 = full image)

    def __post_init__(self) -> None:
        k = self.k_full
        if k.shape != (3, 3) or not np.all(np.isfinite(k)):
            raise UncalibratedCameraError(f"K must be 3x3 and finite, got {k.tolist()}")
        if not np.any(k):
            raise UncalibratedCameraError("camera is uncalibrated: K is all zeros")
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise UncalibratedCameraError(f"focal lengths must be positive, got fx={k[0, 0]} fy={k[1, 1]}")
        if self.width <= 0 or self.height <= 0:
            raise CameraError(f"image size must be positive, got {self.width}x{self.height}")
        if self.binning_x < 1 or self.binning_y < 1:
            raise CameraError(f"binning must be >= 1, got {self.binning_x}x{self.binning_y}")
        x0, y0, w, h = self.roi
        if x0 < 0 or y0 < 0 or w < 0 or h < 0 or x0 + w > self.width or y0 + h > self.height:
            raise CameraError(f"ROI {self.roi} does not fit in the {self.width}x{self.height} image")
        if not np.all(np.isfinite(self.d)):
            raise UnsupportedDistortionError(f"distortion coefficients are not finite: {self.d.tolist()}")

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def from_camera_info(cls, msg: Any) -> CameraModel:
        """From a CameraInfo message (rclpy, rosbags ROS 1/2) or a dict with the same field names."""
        k = np.asarray(_field(msg, "k", "K", default=np.zeros(9)), dtype=np.float64)
        if k.size != 9:
            raise UncalibratedCameraError(f"K must have 9 values, got {k.size}")
        model = str(_field(msg, "distortion_model", default="") or "")
        d = np.asarray(_field(msg, "d", "D", default=[]), dtype=np.float64).ravel()
        if model == "" and d.size and np.any(d):
            raise UnsupportedDistortionError(f"distortion_model is empty but D is non-zero: {d.tolist()}")
        model = model or "plumb_bob"
        if model not in DISTORTION_MODELS:
            raise UnsupportedDistortionError(
                f"distortion model '{model}' is not supported (supported: {', '.join(DISTORTION_MODELS)})"
            )
        n = DISTORTION_MODELS[model]
        if d.size > n:
            if np.any(d[n:]):
                raise UnsupportedDistortionError(
                    f"'{model}' takes at most {n} coefficients, got {d.size}: {d.tolist()}"
                )
            d = d[:n]
        d = np.concatenate([d, np.zeros(n - d.size)])
        r = np.asarray(_field(msg, "r", "R", default=np.eye(3).ravel()), dtype=np.float64).reshape(3, 3)
        if not np.any(r):
            r = np.eye(3)
        p = np.asarray(_field(msg, "p", "P", default=np.zeros(12)), dtype=np.float64).reshape(3, 4)
        roi_msg = _field(msg, "roi", default=None)
        roi = (0, 0, 0, 0)
        if roi_msg is not None:
            roi = tuple(
                _whole(_field(roi_msg, f, default=0), f"roi.{f}") for f in ("x_offset", "y_offset", "width", "height")
            )
        return cls(
            k_full=k.reshape(3, 3),
            d=d,
            distortion_model=model,
            width=_whole(_field(msg, "width", default=0), "width"),
            height=_whole(_field(msg, "height", default=0), "height"),
            r=r,
            p=p,
            binning_x=max(1, _whole(_field(msg, "binning_x", default=1) or 1, "binning_x")),
            binning_y=max(1, _whole(_field(msg, "binning_y", default=1) or 1, "binning_y")),
            roi=roi,  # type: ignore[arg-type]
        )

    @classmethod
    def pinhole(cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> CameraModel:
        """A distortion-free camera (for synthetic data and user-given intrinsics)."""
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(k_full=k, d=np.zeros(5), distortion_model="plumb_bob", width=width, height=height)

    # --- the published image ------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the published image in pixels, after ROI and binning."""
        _, _, w, h = self.roi
        w = w or self.width
        h = h or self.height
        return w // self.binning_x, h // self.binning_y

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name
        """[3,3] pinhole intrinsics of the published image (ROI offset removed, binning applied)."""
        sx, sy = 1.0 / self.binning_x, 1.0 / self.binning_y
        x0, y0 = self.roi[0], self.roi[1]
        k = self.k_full.copy()
        k[0, 0] *= sx
        k[0, 1] *= sx
        k[0, 2] = (k[0, 2] - x0) * sx
        k[1, 1] *= sy
        k[1, 2] = (k[1, 2] - y0) * sy
        return k

    @property
    def focal_length(self) -> float:
        """sqrt(fx·fy) of the published image, pixels: the f of canonical depth Z/f."""
        k = self.K
        return math.sqrt(k[0, 0] * k[1, 1])

    @property
    def has_distortion(self) -> bool:
        return bool(np.any(self.d))

    def check_image(self, width: int, height: int) -> None:
        """Raise CameraError if an image of this size cannot belong to this CameraInfo."""
        if (width, height) != self.image_size:
            raise CameraError(
                f"image is {width}x{height} but its CameraInfo describes {self.image_size[0]}x{self.image_size[1]} "
                f"(size {self.width}x{self.height}, binning {self.binning_x}x{self.binning_y}, roi {self.roi})"
            )

    # --- pixel <-> normalized -----------------------------------------------------------------------
    def _k(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(focal [2], centre [2]) of the published image as float64 on like's device."""
        k = torch.as_tensor(self.K, dtype=torch.float64, device=like.device)
        return torch.stack([k[0, 0], k[1, 1]]), k[:2, 2]

    def _normalize(self, uv: torch.Tensor) -> torch.Tensor:
        """Published-image pixels -> normalized coordinates (the same for any binning/ROI; skew ignored)."""
        f, c = self._k(uv)
        return (uv.double() - c) / f

    # --- distortion in normalized coordinates --------------------------------------------------------
    def distort_normalized(self, xy: torch.Tensor) -> torch.Tensor:
        """Ideal normalized coordinates [..., 2] -> distorted normalized coordinates [..., 2]."""
        d = torch.as_tensor(self.d, dtype=torch.float64, device=xy.device)
        xy = xy.double()
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        if self.distortion_model == "equidistant":
            r = r2.sqrt()
            th = torch.atan(r)
            th2 = th * th
            thd = th * (1 + th2 * (d[0] + th2 * (d[1] + th2 * (d[2] + th2 * d[3]))))
            scale = torch.where(r > 1e-12, thd / r.clamp(min=1e-12), torch.ones_like(r))
            return xy * scale[..., None]
        k1, k2, p1, p2, k3 = d[0], d[1], d[2], d[3], d[4]
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        if self.distortion_model == "rational_polynomial":
            radial = radial / (1 + r2 * (d[5] + r2 * (d[6] + r2 * d[7])))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return torch.stack([xd, yd], dim=-1)

    def undistort_normalized(self, xy_d: torch.Tensor) -> torch.Tensor:
        """Distorted normalized coordinates [..., 2] -> ideal ones (float64).

        plumb_bob / rational_polynomial: damped Newton on the 2D distortion map (converges to < 1e-9
        across real images, also where k3 < 0 bends the map back at the corners). equidistant: Newton on
        the 1D angle θ; rays at or beyond 90° from the optical axis have no pinhole point and give NaN.
        Non-finite inputs stay non-finite.
        """
        target = xy_d.double()
        if not self.has_distortion:
            return target
        if self.distortion_model == "equidistant":
            return self._undistort_equidistant(target)
        xy = target.clone()
        h = 1e-7
        probe = torch.tensor([[h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]], dtype=torch.float64, device=xy.device)
        probe = probe.view(4, *([1] * (xy.dim() - 1)), 2)
        res = self.distort_normalized(xy) - target
        for _ in range(_NEWTON_STEPS):
            # converged everywhere it can (non-finite points stay so): later steps would not move a pixel
            size = res.norm(dim=-1)
            if not bool((size[torch.isfinite(size)] >= _NEWTON_TOL).any()):
                break
            # the Jacobian by central differences: the four probes in one batched evaluation
            d = self.distort_normalized(xy[None] + probe)
            jx, jy = (d[0] - d[1]) / (2 * h), (d[2] - d[3]) / (2 * h)
            a, c = jx[..., 0], jx[..., 1]  # J = [[a, b], [c, e]], columns d/dx and d/dy
            b, e = jy[..., 0], jy[..., 1]
            det = a * e - b * c
            step = (
                torch.stack([e * res[..., 0] - b * res[..., 1], -c * res[..., 0] + a * res[..., 1]], -1)
                / det[..., None]
            )
            # backtracking: halve the step where it does not reduce the residual
            scale = torch.ones_like(det)
            for _ in range(8):
                cand = xy - step * scale[..., None]
                cand_res = self.distort_normalized(cand) - target
                worse = cand_res.norm(dim=-1) > res.norm(dim=-1)
                if not bool(worse.any()):
                    break
                scale = torch.where(worse, scale * 0.5, scale)
            xy, res = cand, cand_res
        # No inverse where the lens model folds back (past the radius where r_d(r) stops growing), or
        # where Newton did not converge: such pixels lie outside the calibrated region.
        ok = (res.norm(dim=-1) < 1e-8) & (xy.norm(dim=-1) <= self.max_radius)
        return torch.where(ok[..., None], xy, torch.full_like(xy, float("nan")))

    @cached_property
    def max_radius(self) -> float:
        """Largest ideal normalized radius where the radial distortion r_d(r) still grows (inf if always)."""
        if self.distortion_model == "equidistant":
            return math.inf
        r = torch.linspace(0.0, 10.0, 100001, dtype=torch.float64)
        pts = torch.stack([r, torch.zeros_like(r)], dim=-1)
        rd = self.distort_normalized(pts).norm(dim=-1)
        falling = torch.nonzero(rd[1:] <= rd[:-1])
        return float(r[falling[0, 0]]) if len(falling) else math.inf

    def _undistort_equidistant(self, xy_d: torch.Tensor) -> torch.Tensor:
        d = torch.as_tensor(self.d, dtype=torch.float64, device=xy_d.device)
        rd = xy_d.norm(dim=-1)
        th = rd.clone()
        for _ in range(_NEWTON_STEPS):
            t2 = th * th
            f = th * (1 + t2 * (d[0] + t2 * (d[1] + t2 * (d[2] + t2 * d[3])))) - rd
            df = 1 + t2 * (3 * d[0] + t2 * (5 * d[1] + t2 * (7 * d[2] + t2 * 9 * d[3])))
            th = th - f / df
        r = torch.tan(th)
        scale = torch.where(rd > 1e-12, r / rd.clamp(min=1e-12), torch.ones_like(rd))
        scale = torch.where((th >= 0) & (th < math.pi / 2), scale, torch.full_like(scale, float("nan")))
        return xy_d * scale[..., None]

    # --- pixels --------------------------------------------------------------------------------------
    def undistort_pixels(self, uv: torch.Tensor) -> torch.Tensor:
        """Raw pixels [..., 2] of the published image -> ideal pixels under :attr:`K`, float64."""
        f, c = self._k(uv)
        return self.undistort_normalized(self._normalize(uv)) * f + c

    def distort_pixels(self, uv_ideal: torch.Tensor) -> torch.Tensor:
        """Ideal pixels under :attr:`K` [..., 2] -> raw pixels of the published image, float64."""
        f, c = self._k(uv_ideal)
        return self.distort_normalized((uv_ideal.double() - c) / f) * f + c

    def project(self, points: torch.Tensor, distort: bool = True) -> torch.Tensor:
        """Camera-frame points [..., 3] (m) -> pixels [..., 2] (raw if distort, else ideal). z <= 0 -> NaN."""
        p = points.double()
        z = p[..., 2:3]
        xy = p[..., :2] / z
        xy = torch.where(z > 0, xy, torch.full_like(xy, float("nan")))
        if distort:
            xy = self.distort_normalized(xy)
        f, c = self._k(points)
        return xy * f + c

    def back_project(self, uv: torch.Tensor, depth: torch.Tensor, distorted: bool = True) -> torch.Tensor:
        """Pixels [..., 2] with depth along z [...] (m) -> camera-frame points [..., 3] (m), float64."""
        xy = self._normalize(uv)
        if distorted:
            xy = self.undistort_normalized(xy)
        z = depth.double()[..., None]
        return torch.cat([xy * z, z], dim=-1)


def _whole(value: Any, name: str) -> int:
    """An integer CameraInfo field; a fraction (width 640.7) is an error, not truncated."""
    number = float(value)
    if not number.is_integer():
        raise CameraError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def load_camera_info(path: str | Path) -> CameraModel:
    """CameraModel from a file: CameraInfo as JSON (fields k/K, d/D, …) or a ROS calibration YAML
    (camera_calibration_parsers: image_width, camera_matrix.data, distortion_coefficients.data, …).

    Raises CameraError naming the file and what is wrong.
    """
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise CameraError(f"{path}: cannot read camera info: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, Mapping):
        raise CameraError(f"{path}: expected a mapping of CameraInfo fields, got {type(data).__name__}")
    if "camera_matrix" in data:  # ROS calibration YAML
        data = {
            "width": data.get("image_width", 0),
            "height": data.get("image_height", 0),
            "distortion_model": data.get("distortion_model", ""),
            "k": (data.get("camera_matrix") or {}).get("data", []),
            "d": (data.get("distortion_coefficients") or {}).get("data", []),
            "r": (data.get("rectification_matrix") or {}).get("data", np.eye(3).ravel()),
            "p": (data.get("projection_matrix") or {}).get("data", np.zeros(12)),
        }
    try:
        return CameraModel.from_camera_info(data)
    except (CameraError, ValueError, TypeError) as exc:
        raise CameraError(f"{path}: {exc}") from exc
