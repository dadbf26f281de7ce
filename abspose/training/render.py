"""Synthetic depth images: capsule bodies and planes in a z-buffer, then a depth sensor's faults.

Used to evaluate the depth path (readout, depth features, fusion) on held-out mocap, where the truth is
known. Frames: camera optical frame (x right, y down, z forward), metres; images [H, W] hold z (metres).

- Bodies are :mod:`abspose.surface`'s capsules (``body_capsules``), the same model the fusion uses to
  predict its readout offsets (:func:`abspose.training.scenes.vary_girth` gives each body its own girth, to see how
  much of the fusion's accuracy rests on that match).
- :func:`render_depth`: exact ray/capsule and ray/plane intersections, nearest surface wins (z-buffer);
  capsules are only tested inside their projected bounding box.
- :func:`sense`: what a real RGB-D camera makes of it: noise σ = k z² (part per pixel, part smooth like
  stereo matching), flying pixels between foreground and background at depth edges, blob-shaped holes,
  range limits, 16UC1 millimetres out (0 = no reading).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from abspose.surface import Capsules, hit_capsules


@dataclass
class SensorModel:
    """Depth sensor faults (metres, fractions); each scene draws its own values from these ranges."""

    noise: tuple[float, float] = (0.5e-3, 3e-3)  # k in σ = k z² (1/m)
    smooth_share: float = 0.8  # share of the noise's σ that is spatially smooth (stereo-like)
    smooth_cell: int = 8  # px, size of the smooth noise's cells
    holes: tuple[float, float] = (0.0, 0.3)  # share of the image lost in blobs
    hole_cell: int = 12  # px, blob size
    dropout: float = 0.02  # single missing pixels
    edge: float = 0.1  # m, a depth step that makes flying pixels
    flying: float = 0.5  # probability that a pixel on such a step is a flying pixel
    min_range: float = 0.3  # m
    max_range: tuple[float, float] = (5.0, 10.0)  # m, per scene (the targets are for < 5 m)


def render_depth(
    K: torch.Tensor, size: tuple[int, int], caps: Capsules, planes: torch.Tensor | None = None, chunk: int = 32768
) -> torch.Tensor:
    """Depth image [H, W] (z in metres, inf = nothing) of the capsules and planes seen by a pinhole camera
    K [3, 3] of size (w, h). ``planes`` [Q, 4] (n, d): the points with n·p = d, |n| = 1."""
    w, h = size
    dev, dt = caps.a.device, caps.a.dtype
    v, u = torch.meshgrid(torch.arange(h, device=dev, dtype=dt), torch.arange(w, device=dev, dtype=dt), indexing="ij")
    d = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)  # z = 1
    z = torch.full((h, w), float("inf"), device=dev, dtype=dt)
    if planes is not None and len(planes):
        t = planes[:, 3] / (d @ planes[:, :3].T)  # [H, W, Q], along d, so t = z
        z = torch.where(t > 0, t, torch.full_like(t, float("inf"))).amin(-1)
    if len(caps.r) == 0:
        return z
    # capsules only inside their image bounding box (all of the image when one comes close to the camera)
    ends = torch.cat([caps.a, caps.b])
    rad = torch.cat([caps.r, caps.r])
    if (ends[:, 2] - rad).amin() < 0.05:
        box = (0, 0, w, h)
    else:
        zc = (ends[:, 2] - rad).clamp(min=0.05)
        px = ends[:, :2] / ends[:, 2:] * torch.stack([K[0, 0], K[1, 1]]) + K[:2, 2]
        pad = rad * K[0, 0] / zc * 1.5 + 2  # the projected radius grows towards the image border
        lo = (px - pad[:, None]).amin(0).floor().clamp(min=0)
        hi = (px + pad[:, None]).amax(0).ceil()
        box = (int(lo[0]), int(lo[1]), min(w, int(hi[0]) + 1), min(h, int(hi[1]) + 1))
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return z
    rays = d[y0:y1, x0:x1].reshape(-1, 3)
    norm = rays.norm(dim=-1, keepdim=True)
    hits = torch.cat([hit_capsules(r / n, caps) for r, n in zip(rays.split(chunk), norm.split(chunk), strict=True)])
    z_caps = (hits / norm[:, 0]).view(y1 - y0, x1 - x0)  # distance along the unit ray -> z
    z[y0:y1, x0:x1] = torch.minimum(z[y0:y1, x0:x1], z_caps)
    return z


def _field(h: int, w: int, cell: int, g: torch.Generator | None, dev, mode: str) -> torch.Tensor:
    """A random field [H, W] of N(0, 1) cells of about ``cell`` px, upsampled."""
    lo = torch.randn(1, 1, max(2, h // cell + 2), max(2, w // cell + 2), device=dev, generator=g)
    up = F.interpolate(lo, size=(h, w), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return up[0, 0]


def sense(z: torch.Tensor, model: SensorModel | None = None, g: torch.Generator | None = None) -> np.ndarray:
    """True depth [H, W] (m, inf = nothing) -> a 16UC1 image [H, W] (uint16 mm, 0 = no reading), as the
    bytes of a depth Image message would give it."""
    m = model or SensorModel()
    h, w = z.shape
    dev = z.device

    def rand(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), device=dev, generator=g))

    finite = torch.isfinite(z)
    far = torch.where(finite, z, torch.full_like(z, 1e3))
    # flying pixels: mixed foreground/background readings on depth steps
    hi = F.max_pool2d(far[None, None], 3, 1, 1)[0, 0]
    lo = -F.max_pool2d(-far[None, None], 3, 1, 1)[0, 0]
    step = (hi - lo > m.edge) & (hi < 1e3) & finite
    fly = step & (torch.rand(z.shape, device=dev, generator=g) < m.flying)
    out = torch.where(fly, lo + (hi - lo) * torch.rand(z.shape, device=dev, generator=g), z)
    # noise σ = k z²: a smooth part and a per-pixel part
    k = rand(*m.noise)
    smooth = _field(h, w, m.smooth_cell, g, dev, "bilinear")
    smooth = smooth / smooth.std().clamp(min=1e-6)
    s = m.smooth_share
    noise = s * smooth + (1 - s * s) ** 0.5 * torch.randn(z.shape, device=dev, generator=g)
    out = out + k * out**2 * noise
    # holes: blobs and single pixels; range limits
    blobs = _field(h, w, m.hole_cell, g, dev, "bilinear")
    hole = blobs < torch.quantile(blobs.flatten()[:: max(1, blobs.numel() // 100000)], rand(*m.holes))
    hole |= torch.rand(z.shape, device=dev, generator=g) < m.dropout
    valid = torch.isfinite(out) & ~hole & (out >= m.min_range) & (out <= rand(*m.max_range))
    mm = torch.where(valid, (out * 1000).round(), torch.zeros_like(out)).clamp(0, 65535)
    return mm.cpu().numpy().astype(np.uint16)
