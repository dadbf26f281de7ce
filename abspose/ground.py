"""The floor under the camera, and the metric distance a foot standing on it gives.

:class:`GroundPlane` is the floor in the camera optical frame, from TF (:meth:`GroundPlane.from_transform`:
the camera's pose in a frame whose z = 0 is the floor, e.g. ``base_footprint``), from a known height and
pitch, or fitted to a depth image (:func:`fit_floor`, RANSAC). :func:`contact` finds the feet that touch it
and the scale that puts them there; :func:`place_on_ground` fuses that scale with the lifter's (docs/lifter.md,
"Ground plane"). Frames: camera optical frame, metres; keypoints are ideal pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from abspose import skeleton as sk
from abspose.camera import CameraModel
from abspose.fuse import SOURCE_GROUND, SOURCE_LIFTED, Fused, rescale

# optical frame (x right, y down, z forward) -> the level frame on the floor (x forward, y left, z up)
_LEVEL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class GroundError(ValueError):
    """A ground plane that cannot be right (camera under the floor, NaN, no rotation)."""


@dataclass(frozen=True)
class GroundPlane:
    """up [3]: unit vector away from the floor, camera optical frame; height m: the camera above the floor,
    so floor points X satisfy up·X = -height. σ: height_sigma m, tilt_sigma rad (of the up direction)."""

    up: tuple[float, float, float]
    height: float
    height_sigma: float = 0.02
    tilt_sigma: float = math.radians(1.0)

    def __post_init__(self) -> None:
        up = np.asarray(self.up, np.float64)
        if up.shape != (3,) or not np.isfinite(up).all() or np.linalg.norm(up) < 1e-6:
            raise GroundError(f"ground plane: up must be a finite 3-vector, got {self.up}")
        if not 0.0 < self.height < 20.0:
            raise GroundError(f"ground plane: the camera must be above the floor (0-20 m), got height {self.height}")
        object.__setattr__(self, "up", tuple(float(v) for v in up / np.linalg.norm(up)))

    @classmethod
    def from_transform(
        cls, rotation: np.ndarray, translation: np.ndarray, height_sigma: float = 0.02, tilt_sigma: float = 0.01
    ) -> GroundPlane:
        """The camera's pose in the ground frame (z up, floor at z = 0): ``rotation`` quaternion x, y, z, w
        (or a [3, 3] matrix) and ``translation`` [3] m, as ``lookup_transform(ground, camera)`` gives."""
        r = np.asarray(rotation, np.float64)
        R = Rotation.from_quat(r).as_matrix() if r.shape == (4,) else Rotation.from_matrix(r).as_matrix()
        return cls(tuple(R.T @ np.array([0.0, 0.0, 1.0])), float(np.asarray(translation)[2]), height_sigma, tilt_sigma)

    @classmethod
    def from_height_pitch(
        cls, height: float, pitch: float, roll: float = 0.0, height_sigma: float = 0.02, tilt_sigma: float = 0.01
    ) -> GroundPlane:
        """A camera ``height`` m above the floor, pitched down by ``pitch`` rad and rolled by ``roll`` rad
        (about its optical axis, clockwise in the image)."""
        R = Rotation.from_euler("YX", [pitch, roll]).as_matrix() @ _LEVEL
        return cls.from_transform(R, np.array([0.0, 0.0, height]), height_sigma, tilt_sigma)

    @property
    def pitch(self) -> float:
        """rad, down positive."""
        return math.asin(max(-1.0, min(1.0, -self.up[2])))

    def tensor(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.tensor(self.up, device=device, dtype=dtype)


@dataclass
class FloorFit:
    """RANSAC on the depth image's points; a fit that does not look like a floor is refused (None)."""

    stride: int = 4  # px between the depth pixels sampled
    max_points: int = 4000
    max_range: float = 8.0  # m
    threshold: float = 0.03  # m: inlier distance from the plane
    max_tilt: float = math.radians(45.0)  # largest angle between the floor's up and the image's up (-y)
    heights: tuple[float, float] = (0.1, 3.0)  # m, plausible camera heights
    min_inliers: float = 0.15  # share of the sampled points on the floor
    min_points: int = 300
    trials: int = 256
    seed: int = 0


def fit_floor(
    depth_m: torch.Tensor, camera: CameraModel, exclude: np.ndarray | None = None, cfg: FloorFit | None = None
) -> GroundPlane | None:
    """The floor in a depth image [H, W] (m, NaN invalid; ``camera``: its model, registered to the colour
    camera) or None when no floor-like plane holds enough of it. ``exclude`` [N, 4] px boxes (x0, y0, x1,
    y1) in the depth image: people, whose points are not floor.

    RANSAC with every hypothesis scored at once (planes through ``trials`` random point triples, only those
    tilted less than ``max_tilt`` from the image's up and below the camera), then a least-squares plane
    through the best one's inliers. (scikit-learn's RANSACRegressor, a Python loop over trials, took 322 ms
    per fit of 4,000 points on the 2-core CPU, too slow for a node; this takes a few ms.)"""
    cfg = cfg or FloorFit()
    d = depth_m.detach()
    dev = d.device
    h, w = d.shape
    v, u = torch.meshgrid(
        torch.arange(0, h, cfg.stride, device=dev), torch.arange(0, w, cfg.stride, device=dev), indexing="ij"
    )
    rays = _rays(camera, cfg.stride, h, w).to(dev)
    z = d[v, u]
    ok = torch.isfinite(z) & (z > 0.2) & (z < cfg.max_range)
    for x0, y0, x1, y1 in np.asarray(exclude if exclude is not None else np.zeros((0, 4))).reshape(-1, 4):
        if np.isfinite([x0, y0, x1, y1]).all():
            ok &= ~((u >= x0) & (u <= x1) & (v >= y0) & (v <= y1))
    if int(ok.sum()) < cfg.min_points:
        return None
    pts = rays[ok] * z[ok, None]
    g = torch.Generator(device="cpu").manual_seed(cfg.seed)
    if len(pts) > cfg.max_points:
        pts = pts[torch.randperm(len(pts), generator=g)[: cfg.max_points].to(dev)]
    tri = pts[torch.randint(len(pts), (cfg.trials, 3), generator=g).to(dev)]  # [T, 3, 3]
    normal = torch.nn.functional.normalize(torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1), dim=-1)
    normal = torch.where(normal[:, 1:2] > 0, -normal, normal)  # pointing up the image (-y): away from a floor
    offset = -(normal * tri[:, 0]).sum(-1)  # up·X + offset = 0 on the plane; offset = the camera's height
    floor_like = (-normal[:, 1] >= math.cos(cfg.max_tilt)) & (offset > 0) & torch.isfinite(normal).all(-1)
    inliers = ((pts @ normal.T + offset).abs() <= cfg.threshold) & floor_like  # [P, T]
    best = int(inliers.sum(0).argmax())
    mask = inliers[:, best]
    if int(mask.sum()) < max(cfg.min_points, cfg.min_inliers * len(pts)):
        return None
    on = pts[mask].double()
    centre = on.mean(0)
    up = torch.linalg.svd(on - centre, full_matrices=False).Vh[-1]  # the least-squares normal
    up = -up if up[1] > 0 else up
    height = float(-(up * centre).sum())
    if not cfg.heights[0] <= height <= cfg.heights[1] or -float(up[1]) < math.cos(cfg.max_tilt):
        return None
    return GroundPlane(tuple(up.tolist()), height)


_RAYS: dict[tuple, torch.Tensor] = {}


def _rays(camera: CameraModel, stride: int, h: int, w: int) -> torch.Tensor:
    """Ideal rays [h/stride, w/stride, 3] (z = 1) of a depth image's sampled pixels, once per camera: the
    undistortion of a whole grid iterates long at strongly distorted corners (≈ 60 ms for the TU/e Xtion)."""
    key = (camera.k_full.tobytes(), camera.d.tobytes(), camera.distortion_model, camera.image_size, stride, h, w)
    if key not in _RAYS:
        if len(_RAYS) > 8:
            _RAYS.clear()
        v, u = torch.meshgrid(torch.arange(0, h, stride), torch.arange(0, w, stride), indexing="ij")
        _RAYS[key] = camera.back_project(torch.stack([u, v], -1).double(), torch.ones(u.shape)).float()
    return _RAYS[key]


@dataclass
class ContactConfig:
    # the joints a person stands on and their height above the floor when touching it (m; medians of the
    # CMU mocap's frames with that foot on the floor: ankle 0.065-0.071, toe tip 0.026) with their spread
    joints: tuple[str, ...] = ("left_ankle", "right_ankle", "left_foot", "right_foot")
    joint_height: tuple[float, ...] = (0.07, 0.07, 0.025, 0.025)
    joint_height_sigma: tuple[float, ...] = (0.03, 0.03, 0.015, 0.015)
    band: float = 0.06  # m: foot joints within this of the lowest one touch the floor too
    below: float = 0.15  # m: another joint this far below the feet: not standing on them (lying, fallen)
    pixel_sigma: float = 0.02  # keypoint error, share of the person's 2D height
    min_pixel_sigma: float = 2.0  # px
    border: float = 2.0  # px: a foot keypoint this near the image edge may be cut off
    min_elevation: float = math.radians(2.0)  # the foot's ray below the horizon by at least this
    gate: float = 10.83  # χ²(1) at 99.9 %: contact vs lifter scale disagreement that drops the contact


@dataclass
class Contact:
    """scale [N]: the factor that puts the touching feet on the floor (NaN: no contact), sigma [N] its
    1-σ, touching [N, J] bool: the joints on the floor."""

    scale: torch.Tensor
    sigma: torch.Tensor
    touching: torch.Tensor


def contact(
    lifted: torch.Tensor,
    relative_sigma: torch.Tensor,
    keypoints: torch.Tensor,
    usable: torch.Tensor,
    K: torch.Tensor,
    plane: GroundPlane,
    image_size: tuple[int, int],
    cfg: ContactConfig | None = None,
) -> Contact:
    """Lifted people [N, J, 3] m (with each joint's relative error [N, J] m), ideal keypoints [N, J, 2]
    (``usable`` [N, J]), K [3, 3], the image's (width, height) -> the feet on the floor and the scale that
    puts them there (:func:`contact_many`, one camera)."""
    n, dev, dt = lifted.shape[0], lifted.device, lifted.dtype
    return contact_many(
        lifted,
        relative_sigma,
        keypoints,
        usable,
        K.to(dev, dt).expand(n, 3, 3),
        plane.tensor(dev, dt).expand(n, 3),
        torch.full((n,), plane.height, device=dev, dtype=dt),
        torch.tensor(image_size, device=dev, dtype=dt).expand(n, 2),
        cfg,
        plane.height_sigma,
        plane.tilt_sigma,
    )


def contact_many(
    lifted: torch.Tensor,
    relative_sigma: torch.Tensor,
    keypoints: torch.Tensor,
    usable: torch.Tensor,
    K: torch.Tensor,
    up: torch.Tensor,
    height: torch.Tensor,
    image_size: torch.Tensor,
    cfg: ContactConfig | None = None,
    height_sigma: float = 0.02,
    tilt_sigma: float = 0.01,
) -> Contact:
    """:func:`contact` with a camera per person: K [N, 3, 3], up [N, 3], height [N] m, image_size [N, 2].

    A foot joint touches when it is within ``band`` of the person's lowest foot joint (each less its contact
    height, along the floor's up), no other joint lies ``below`` the feet, its keypoint is detected inside
    the image and its ray meets the floor ahead. Pose only: a person mid-jump or on a step looks the same,
    which the gate against the lifter and the track's scale (:mod:`abspose.body_scale`) catch."""
    cfg = cfg or ContactConfig()
    n, dev, dt = lifted.shape[0], lifted.device, lifted.dtype
    feet = torch.tensor([sk.JOINT_INDEX[j] for j in cfg.joints], device=dev)
    a = torch.tensor(cfg.joint_height, device=dev, dtype=dt)
    sa = torch.tensor(cfg.joint_height_sigma, device=dev, dtype=dt)
    up, height = up.to(dev, dt), height.to(dev, dt)[:, None]
    h = (lifted * up[:, None]).sum(-1)  # [N, J] height along up, less the camera's
    floor = (h[:, feet] - a).nan_to_num(float("inf")).amin(1)  # [N] the lowest foot's floor
    others = torch.ones(lifted.shape[1], dtype=torch.bool, device=dev)
    others[feet] = False
    lying = (h[:, others] < floor[:, None] - cfg.below).any(1)
    K = K.to(dev, dt)
    f = torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None]  # [N, 1, 2]
    kp = keypoints[:, feet].to(dev, dt)
    ray = torch.cat([(kp - K[:, None, :2, 2]) / f, torch.ones_like(kp[..., :1])], -1)  # [N, F, 3]
    along = (ray * up[:, None]).sum(-1)  # < 0: below the horizon
    length = ray.norm(dim=-1)
    size = image_size.to(dev, dt)[:, None]
    inside = ((kp >= cfg.border) & (kp <= size - 1 - cfg.border)).all(-1)
    touching = (h[:, feet] - a - floor[:, None] <= cfg.band) & usable[:, feet].to(dev) & inside
    touching &= (along < -math.sin(cfg.min_elevation) * length) & ~lying[:, None] & torch.isfinite(h[:, feet])
    z_lift = lifted[:, feet, 2]
    touching &= z_lift > 0
    z_floor = (height - a) / (-along).clamp(min=1e-6)  # the foot's depth on its ray at its contact height
    s_j = z_floor / z_lift.clamp(min=1e-6)
    # the error of each s_j (relative): its own parts (pixel, contact height, the lifted joint's relative depth)
    # and the parts every foot shares (camera height, tilt)
    vis = usable.to(dev) & torch.isfinite(keypoints.to(dev, dt)).all(-1)
    rows = keypoints[..., 1].to(dev, dt)
    span = (torch.where(vis, rows, -1e9).amax(1) - torch.where(vis, rows, 1e9).amin(1)).clamp(min=0)
    sig_px = (cfg.pixel_sigma * span).clamp(min=cfg.min_pixel_sigma)[:, None]
    d_along = sig_px * torch.sqrt((up[:, None, 0] / f[..., 0]) ** 2 + (up[:, None, 1] / f[..., 1]) ** 2)
    own = (d_along / along) ** 2 + (sa / (height - a)) ** 2 + (relative_sigma[:, feet].to(dev, dt) / z_lift) ** 2
    tilt = tilt_sigma * torch.sqrt((length**2 - along**2).clamp(min=0)) / along.abs().clamp(min=1e-6)
    shared = torch.sqrt((height_sigma / (height - a)) ** 2 + tilt**2)
    wgt = torch.where(touching, 1.0 / (own + shared**2).clamp(min=1e-12), torch.zeros_like(own))
    total = wgt.sum(1).clamp(min=1e-12)
    has = wgt.sum(1) > 0
    share = wgt / total[:, None]
    scale = (share * s_j.nan_to_num()).sum(1)
    rel_var = (share**2 * own.nan_to_num()).sum(1) + (share * shared.nan_to_num()).sum(1) ** 2
    nan = torch.full((n,), float("nan"), device=dev, dtype=dt)
    joints = torch.zeros(lifted.shape[:2], dtype=torch.bool, device=dev)
    joints[:, feet] = touching
    return Contact(torch.where(has, scale, nan), torch.where(has, scale * rel_var.sqrt(), nan), joints)


def place_on_ground(fused: Fused, found: Contact, cfg: ContactConfig | None = None) -> Fused:
    """People whose scale is still the lifter's own (no depth accepted) get the contact's scale fused with
    it by inverse variance, unless the two disagree beyond ``gate``; their lifted joints become
    SOURCE_GROUND. People placed by depth keep it (depth measures the distance directly)."""
    cfg = cfg or ContactConfig()
    lifter_only = (fused.source == SOURCE_LIFTED) | (fused.source == 0)
    mono = lifter_only.all(1) & (fused.source == SOURCE_LIFTED).any(1)
    s_g, sig_g = found.scale.to(fused.scale), found.sigma.to(fused.scale)
    sig_l = fused.scale_sigma
    ok = mono & torch.isfinite(s_g) & (sig_g > 0)
    ok &= (s_g - fused.scale) ** 2 <= cfg.gate * (sig_l**2 + sig_g**2)
    w_l, w_g = sig_l.clamp(min=1e-6) ** -2, sig_g.nan_to_num(1.0).clamp(min=1e-6) ** -2
    s = (w_l * fused.scale + w_g * s_g.nan_to_num(1.0)) / (w_l + w_g)
    sigma = (w_l + w_g) ** -0.5
    factor = torch.where(ok, s / fused.scale, torch.ones_like(s))
    out = rescale(fused, factor, torch.where(ok, sigma, sig_l))
    out.source = torch.where(ok[:, None] & (out.source == SOURCE_LIFTED), SOURCE_GROUND, out.source).to(torch.uint8)
    return out
