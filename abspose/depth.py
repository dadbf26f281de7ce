"""Depth images in, robust per-joint depth readouts out.

Units by encoding (never guessed from values): ``16UC1``/``mono16`` = millimetres, ``32FC1`` = metres; a
user ``scale`` (metres per unit) overrides for odd sensors. 0, NaN and ±inf are invalid.

Geometry: keypoints arrive as *ideal* (undistorted) pixels of the colour camera. A registered depth image
(same optical frame) may have its own resolution and CameraInfo: the keypoint's ray is projected into the
depth camera with its own K and distortion (:func:`depth_pixels`). Unregistered depth (another frame_id)
is refused unless the caller gives the depth->colour transform, then :func:`register_depth` re-projects
the depth image into the colour camera (z-buffer, nearest surface wins).

Readout (:func:`read_depth`), per person and joint, batched:
1. a G×G grid of samples in a square patch around the joint, its half-size ``patch_scale`` × the person's
   2D scale (RMS keypoint radius, depth pixels), clamped to [min_patch, max_patch] px;
2. the person's torso depth = median of the valid samples at hips, shoulders, pelvis and neck; samples
   more than ``front`` m in front of it (occluders) or ``back`` m behind it (background) are rejected;
3. the joint's surface depth = the ``quantile`` of the remaining samples (front-biased: at a limb's edge
   the patch also holds background that survived step 2), valid when at least ``min_valid`` of the grid
   survived; σ = sqrt((k·z²)² + σ_min² + (spread/2)²) with k the sensor's noise coefficient (1/m).

Torso plane (with ``rays``, the keypoints' normalized ideal coordinates): a G×G grid over the inner part
of the shoulder–hip quadrilateral, its samples within ``torso_band`` of the torso depth back-projected and
fitted with a plane (robust: Tukey-weighted, the rejection width shrinking to a few sensor σ). Its normal
(facing the camera) and the normal's angular σ say which way the torso's front faces — what a monocular
lifter gets least right (:func:`abspose.fuse.orient` turns the lifted body to it).

The readout is the depth of the body *surface*; :mod:`abspose.fuse` predicts how far behind it each joint
lies from the lifted pose (:func:`abspose.surface.readout_offsets`, with the patch size the readout
reports). Frames: camera optical frames, metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from abspose import skeleton as sk
from abspose.camera import CameraError, CameraModel

# encoding -> metres per unit
DEPTH_ENCODINGS: dict[str, float] = {"16UC1": 0.001, "mono16": 0.001, "32FC1": 1.0}
_DTYPES = {
    "16UC1": (np.uint16, torch.uint16),
    "mono16": (np.uint16, torch.uint16),
    "32FC1": (np.float32, torch.float32),
}
TORSO = tuple(sk.JOINT_INDEX[n] for n in ("pelvis", "left_hip", "right_hip", "neck", "left_shoulder", "right_shoulder"))


class DepthError(ValueError):
    """A depth image or depth geometry the pipeline cannot use; the message says what is wrong."""


MAX_DEPTH = 100.0  # m: readings beyond are invalid (a 32FC1 image of 1e30 m once crashed the torso-plane fit)


@dataclass
class DepthConfig:
    """Readout parameters (pixels, metres)."""

    scale: float | None = None  # metres per unit; None = by encoding
    patch_scale: float = 0.06  # patch half-size as a fraction of the person's 2D scale
    min_patch: float = 2.0  # px
    max_patch: float = 12.0  # px
    grid: int = 7  # samples per patch side
    front: float = 0.8  # m in front of the torso still counted as the body (reaching arms)
    back: float = 0.5  # m behind the torso still counted as the body
    quantile: float = 0.3
    min_valid: float = 0.2  # share of the grid that must survive
    noise_k: float = 1.5e-3  # σ = k z² (1/m), structured-light / ToF class sensors
    sigma_min: float = 0.015  # m
    torso_grid: int = 9  # torso-plane samples per side
    torso_inset: float = 0.2  # the torso grid spans this fraction in from the shoulder/hip corners
    torso_band: float = 0.3  # m around the torso depth: the torso plane's samples
    torso_min: float = 0.3  # share of the torso grid that must survive for a plane


@dataclass
class Readout:
    """surface [N, J] m (NaN = invalid), sigma [N, J] m, valid [N, J] bool (J = NUM_JOINTS); patch [N] =
    each person's patch half-size in normalized image coordinates (pixels / f), None when not known;
    quantile = the patch quantile taken (how the fusion predicts what a body gives, :mod:`abspose.surface`);
    torso_normal [N, 3] = unit normal of the torso's front plane in the camera frame, facing the camera
    (NaN = no plane), torso_sigma [N] its angular σ (rad); None when not measured."""

    surface: torch.Tensor
    sigma: torch.Tensor
    valid: torch.Tensor
    patch: torch.Tensor | None = None
    quantile: float = 0.3
    torso_normal: torch.Tensor | None = None
    torso_sigma: torch.Tensor | None = None


def depth_to_metres(
    image: np.ndarray | torch.Tensor, encoding: str, scale: float | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Depth image [H, W] -> float32 metres on ``device``, NaN where invalid (0, NaN, inf, negative, or beyond
    ``MAX_DEPTH``: no body-tracking sensor reads that far, such values are garbage)."""
    if encoding not in DEPTH_ENCODINGS:
        raise DepthError(f"unsupported depth encoding '{encoding}' (supported: {', '.join(DEPTH_ENCODINGS)})")
    np_dtype, torch_dtype = _DTYPES[encoding]
    t = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image))
    if t.ndim == 3 and t.shape[2] == 1:
        t = t[..., 0]
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise DepthError(f"depth image must be HxW and non-empty, got shape {tuple(t.shape)}")
    if t.dtype != torch_dtype:
        raise DepthError(f"'{encoding}' needs {np.dtype(np_dtype).name} pixels, got {t.dtype}")
    unit = DEPTH_ENCODINGS[encoding] if scale is None else float(scale)
    if not unit > 0:
        raise DepthError(f"depth scale must be positive, got {scale}")
    z = t.to(device).float() * unit
    return torch.where((z > 0) & (z <= MAX_DEPTH), z, torch.full_like(z, float("nan")))  # NaN fails both


def depth_pixels(keypoints: torch.Tensor, color: CameraModel, depth: CameraModel) -> torch.Tensor:
    """Ideal colour pixels [..., 2] -> raw pixels of a *registered* depth image (its own K, D, size)."""
    kc = torch.as_tensor(color.K, dtype=torch.float64, device=keypoints.device)
    xy = (keypoints.double() - kc[:2, 2]) / torch.stack([kc[0, 0], kc[1, 1]])
    rays = torch.cat([xy, torch.ones_like(xy[..., :1])], -1)
    return depth.project(rays, distort=True)


def register_depth(
    depth_m: torch.Tensor, depth_cam: CameraModel, color_cam: CameraModel, rotation: np.ndarray, translation: np.ndarray
) -> torch.Tensor:
    """Unregistered depth [Hd, Wd] (m) -> depth in the colour camera's raw image [Hc, Wc] (m, NaN = none).

    ``rotation`` [3, 3] and ``translation`` [3] map points from the depth optical frame to the colour one
    (p_c = R p_d + t, as a TF lookup of the depth frame in the colour frame gives). Nearest surface wins.
    """
    dev = depth_m.device
    h, w = depth_m.shape
    v, u = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    ok = torch.isfinite(depth_m)
    uv = torch.stack([u[ok], v[ok]], -1).double()
    pts = depth_cam.back_project(uv, depth_m[ok])
    R = torch.as_tensor(rotation, dtype=torch.float64, device=dev)
    t = torch.as_tensor(translation, dtype=torch.float64, device=dev)
    pts = pts @ R.T + t
    px = color_cam.project(pts, distort=True).round().long()
    wc, hc = color_cam.image_size
    inside = (
        torch.isfinite(pts[:, 2])
        & (pts[:, 2] > 0)
        & (px[:, 0] >= 0)
        & (px[:, 0] < wc)
        & (px[:, 1] >= 0)
        & (px[:, 1] < hc)
    )
    out = torch.full((hc * wc,), float("inf"), dtype=torch.float32, device=dev)
    out.scatter_reduce_(0, px[inside, 1] * wc + px[inside, 0], pts[inside, 2].float(), reduce="amin")
    out = out.view(hc, wc)
    return torch.where(torch.isfinite(out), out, torch.full_like(out, float("nan")))


def _sample(depth_m: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Depth (m) at pixel positions pts [..., 2] (rounded; NaN outside the image or where pts is NaN)."""
    h, w = depth_m.shape
    pts = pts.round().nan_to_num(-1.0)
    inside = (pts[..., 0] >= 0) & (pts[..., 0] < w) & (pts[..., 1] >= 0) & (pts[..., 1] < h)
    flat = (pts[..., 1].clamp(0, h - 1) * w + pts[..., 0].clamp(0, w - 1)).long()
    s = depth_m.reshape(-1)[flat]
    return torch.where(inside, s, torch.full_like(s, float("nan")))


TORSO_CORNERS = tuple(sk.JOINT_INDEX[n] for n in ("left_shoulder", "right_shoulder", "right_hip", "left_hip"))


def torso_plane(
    depth_m: torch.Tensor,
    pixels: torch.Tensor,
    rays: torch.Tensor,
    ok: torch.Tensor,
    ref: torch.Tensor,
    cfg: DepthConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Front plane of each person's torso: unit normal [N, 3] (camera frame, facing the camera; NaN = none)
    and its angular σ [N] (rad). ``pixels`` [N, J, 2] raw depth pixels, ``rays`` [N, J, 2] normalized ideal
    coordinates of the same keypoints, ``ok`` [N, J] usable, ``ref`` [N] the torso depth (m)."""
    t = torch.linspace(cfg.torso_inset, 1 - cfg.torso_inset, cfg.torso_grid, device=depth_m.device)
    a, b = (x.reshape(-1) for x in torch.meshgrid(t, t, indexing="xy"))  # across (shoulder line), down
    weights = torch.stack([(1 - a) * (1 - b), a * (1 - b), a * b, (1 - a) * b], -1)  # [G², 4] bilinear
    corners = list(TORSO_CORNERS)
    have = ok[:, corners].all(1)
    z = _sample(depth_m, weights @ pixels[:, corners].nan_to_num())  # [N, G²]
    z = torch.where(have[:, None] & ((z - ref[:, None]).abs() <= cfg.torso_band), z, torch.full_like(z, float("nan")))
    xy = weights @ rays[:, corners].nan_to_num()  # ideal rays interpolate like the pixels (distortion is smooth)
    pts = torch.cat([xy, torch.ones_like(xy[..., :1])], -1) * z.nan_to_num()[..., None]  # [N, G², 3]
    enough = torch.isfinite(z).sum(1) >= max(4, int(cfg.torso_min * cfg.torso_grid**2))
    # Tukey-reweighted plane fit, started from the frontal plane at the samples' median depth; the
    # rejection width shrinks each round to a few sensor σ, so that arms held before the chest (10+ cm in
    # front over a third of the torso) are dropped rather than averaged in
    med = z.nanmedian(1, keepdim=True).values
    floor = (3 * cfg.noise_k * med**2).clamp(min=0.02)
    res = z - med
    for width in (0.15, 0.1, 0.06, 0.0, 0.0):  # m, never below the sensor floor
        c = floor.clamp(min=width)
        w = torch.where(torch.isfinite(z), (1 - (res / c) ** 2).clamp(min=0) ** 2, torch.zeros_like(z))
        centre = (w[..., None] * pts).sum(1) / w.sum(1, keepdim=True).clamp(min=1)
        d = (pts - centre[:, None]) * w[..., None].sqrt()
        evals, evecs = torch.linalg.eigh(d.transpose(1, 2) @ d / w.sum(1).clamp(min=1)[:, None, None])
        normal = evecs[..., 0]
        res = ((pts - centre[:, None]) * normal[:, None]).sum(-1)
    n_eff = w.sum(1).clamp(min=1)
    sigma = torch.sqrt(evals[:, 0].clamp(min=1e-8) / (n_eff * evals[:, 1].clamp(min=1e-8)))
    normal = torch.where(((normal * centre).sum(-1) > 0)[:, None], -normal, normal)  # towards the camera
    good = enough & have & torch.isfinite(sigma)
    return torch.where(good[:, None], normal, float("nan")), torch.where(good, sigma, float("nan"))


def read_depth(
    depth_m: torch.Tensor,
    pixels: torch.Tensor,
    mask: torch.Tensor,
    cfg: DepthConfig | None = None,
    focal: float | None = None,
    rays: torch.Tensor | None = None,
) -> Readout:
    """Per-joint surface depth from depth [H, W] (m, NaN invalid) at ``pixels`` [N, J, 2] (raw depth-image
    pixels, J = NUM_JOINTS) for joints with ``mask`` [N, J]. All people and joints in one pass. ``focal``:
    the depth image's f (px), to report the patch size in normalized coordinates. ``rays`` [N, J, 2]: the
    keypoints' normalized ideal coordinates, to measure the torso plane (:func:`torso_plane`)."""
    cfg = cfg or DepthConfig()
    n, j = pixels.shape[:2]
    dev = depth_m.device
    if n == 0:
        empty = torch.zeros(0, j, device=dev)
        planes = (torch.zeros(0, 3, device=dev), torch.zeros(0, device=dev)) if rays is not None else (None, None)
        return Readout(empty, empty, empty.bool(), torch.zeros(0, device=dev) if focal else None, cfg.quantile, *planes)
    px = pixels.to(dev, torch.float32)
    ok = mask.to(dev) & torch.isfinite(px).all(-1)
    m = ok.float()[..., None]
    centre = (torch.where(ok[..., None], px, torch.zeros_like(px)) * m).sum(1) / m.sum(1).clamp(min=1)
    spread = (
        (((px - centre[:, None]) ** 2).sum(-1, keepdim=True).nan_to_num() * m).sum(1) / m.sum(1).clamp(min=1)
    ).sqrt()
    half = (cfg.patch_scale * spread).clamp(cfg.min_patch, cfg.max_patch)  # [N, 1]
    steps = torch.linspace(-1, 1, cfg.grid, device=dev)
    off = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), -1).view(-1, 2)  # [G², 2]
    pts = (px[:, :, None] + off[None, None] * half[:, :, None, None]).round()  # [N, J, G², 2]; half [N, 1]
    pts = torch.where(ok[..., None, None], pts, torch.full_like(pts, -1.0))
    s = _sample(depth_m, pts)  # [N, J, G²]
    torso = s[:, list(TORSO)].reshape(n, -1)
    ref = torch.nanmedian(torso, dim=1).values
    fallback = torch.nanmedian(s.reshape(n, -1), dim=1).values
    ref = torch.where(torch.isfinite(ref), ref, fallback)
    keep = (s >= ref[:, None, None] - cfg.front) & (s <= ref[:, None, None] + cfg.back)
    s = torch.where(keep, s, torch.full_like(s, float("nan")))
    count = keep.sum(-1)
    surface = torch.nanquantile(s, cfg.quantile, dim=-1)
    valid = ok & (count >= max(3, int(cfg.min_valid * cfg.grid**2))) & torch.isfinite(surface)
    lo, hi = torch.nanquantile(s, 0.25, dim=-1), torch.nanquantile(s, 0.75, dim=-1)
    sigma = torch.sqrt((cfg.noise_k * surface**2) ** 2 + cfg.sigma_min**2 + (0.5 * (hi - lo)) ** 2)
    nan = torch.full_like(surface, float("nan"))
    patch = half[:, 0] / focal if focal else None
    planes = torso_plane(depth_m, px, rays.to(dev, torch.float32), ok, ref, cfg) if rays is not None else (None, None)
    return Readout(
        torch.where(valid, surface, nan), torch.where(valid, sigma, nan), valid, patch, cfg.quantile, *planes
    )


def read_registered(
    ideal: torch.Tensor,
    usable: torch.Tensor,
    camera: CameraModel,
    depth: np.ndarray | torch.Tensor,
    encoding: str | None,
    depth_camera: CameraModel | None,
    cfg: DepthConfig | None = None,
    device: str | torch.device = "cpu",
) -> Readout:
    """Readouts for ideal colour keypoints [N, J, 2] (``usable`` [N, J]) from a depth image registered to the
    colour camera: the colour image's size, or its own ``depth_camera`` (another resolution / binning).
    ``encoding`` None: 16UC1 for uint16 pixels, else 32FC1."""
    cfg = cfg or DepthConfig()
    enc = encoding or ("16UC1" if "uint16" in str(depth.dtype) else "32FC1")
    dm = depth_to_metres(depth, enc, cfg.scale, device)
    dcam = depth_camera or camera
    dh, dw = dm.shape
    if (dw, dh) != dcam.image_size:
        if depth_camera is None:
            raise DepthError(
                f"depth image is {dw}x{dh} but the colour image is {camera.image_size[0]}x"
                f"{camera.image_size[1]}: give the depth CameraInfo"
            )
        try:
            dcam.check_image(dw, dh)
        except CameraError as exc:  # the depth stream's fault: costs the depth, not the frame
            raise DepthError(f"depth stream: {exc}") from exc
    px = depth_pixels(ideal, camera, dcam) if dcam is not camera else camera.distort_pixels(ideal.double())
    kc = torch.as_tensor(camera.K, dtype=torch.float32, device=ideal.device)
    rays = (ideal.float() - kc[:2, 2]) / torch.stack([kc[0, 0], kc[1, 1]])
    return read_depth(dm, px.float(), usable, cfg, dcam.focal_length, rays)
