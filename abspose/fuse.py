"""Fuse the lifted pose with depth readouts, per joint, with a source and a 3D uncertainty.

Per joint (batched over people and joints, 3×3 algebra in torch):

- lifted point P_l with isotropic covariance σ_l² I, σ_l = the lifter's expected error × ``lift_scale``;
- depth point P_d = the keypoint's ray at the readout depth + the joint's body radius
  (``skeleton.BODY_RADIUS``), covariance σ_d² along the ray and (σ_px · z / f)² across it;
- gate: if the squared Mahalanobis distance of P_d − P_l under Σ_l + Σ_d exceeds ``gate`` (χ², 3 dof,
  99.9 % by default) the readout is an outlier for this pose (wrong surface, occluder, hole filled with
  background) and the joint keeps the lifted point;
- otherwise the information-weighted mean (P_f, Σ_f = (Σ_l⁻¹ + Σ_d⁻¹)⁻¹).

Joints without an accepted readout (no depth, spine, rejected) are moved by the person's median fusion
correction so the skeleton stays in one piece; they keep source LIFTED. A joint the lifter could not place
but depth could gets source DEPTH. Uncertainty out = sqrt(trace Σ) (metres).
Frames: camera optical frame, metres; keypoints are ideal pixels of the colour camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import skeleton as sk
from .depth import Readout

# Skeleton.msg joint_source constants
SOURCE_INVALID, SOURCE_DEPTH, SOURCE_LIFTED, SOURCE_FUSED = 0, 1, 2, 3


@dataclass
class FuseConfig:
    gate: float = 16.27  # χ²(3) at 99.9 %
    lift_scale: float = 1.25  # Laplace mean |e| -> Gaussian σ per axis ≈ 1.25 · E|e| / √3 · √3
    pixel_sigma: float = 2.0  # px, keypoint noise across the ray


@dataclass
class Fused:
    """joints [N, J, 3] m, uncertainty [N, J] m, source [N, J] uint8 (SOURCE_*), root [N, 3] m."""

    joints: torch.Tensor
    uncertainty: torch.Tensor
    source: torch.Tensor
    root: torch.Tensor


def fuse(lifted: torch.Tensor, lifted_sigma: torch.Tensor, keypoints: torch.Tensor, K: torch.Tensor,
         readout: Readout | None, cfg: FuseConfig | None = None) -> Fused:  # fmt: skip
    """lifted [N, J, 3] m and its expected error [N, J] m; keypoints [N, J, 2] ideal colour pixels; K [3, 3]
    of the colour camera; readout (surface depth per joint) or None (monocular: everything LIFTED)."""
    cfg = cfg or FuseConfig()
    n = lifted.shape[0]
    dev, dt = lifted.device, lifted.dtype
    ok_l = torch.isfinite(lifted).all(-1)
    eye = torch.eye(3, device=dev, dtype=dt)
    var_l = (cfg.lift_scale * lifted_sigma.nan_to_num(1.0)) ** 2
    source = torch.where(ok_l, SOURCE_LIFTED, SOURCE_INVALID).to(torch.uint8)
    if readout is None or n == 0:
        unc = torch.where(ok_l, (3 * var_l).sqrt(), torch.full_like(var_l, float("nan")))
        return Fused(lifted, unc, source, lifted[:, sk.PELVIS])
    K = K.to(dev, dt)
    f = torch.stack([K[0, 0], K[1, 1]])
    xy = (keypoints.to(dev, dt) - K[:2, 2]) / f
    ray = torch.nn.functional.normalize(torch.cat([xy, torch.ones_like(xy[..., :1])], -1), dim=-1)
    radius = torch.tensor(sk.BODY_RADIUS, device=dev, dtype=dt)
    z = readout.surface.to(dev, dt) + radius
    p_d = torch.cat([xy, torch.ones_like(xy[..., :1])], -1) * z[..., None]
    ok_d = readout.valid.to(dev) & torch.isfinite(p_d).all(-1)
    rr = ray[..., :, None] * ray[..., None, :]
    lateral = (cfg.pixel_sigma * z / torch.sqrt(f.prod())) ** 2
    cov_d = readout.sigma.to(dev, dt)[..., None, None] ** 2 * rr + lateral[..., None, None] * (eye - rr)
    cov_d = torch.where(ok_d[..., None, None], cov_d, eye.expand_as(cov_d))
    cov_l = var_l[..., None, None] * eye
    diff = torch.where((ok_d & ok_l)[..., None], p_d - lifted, torch.zeros_like(p_d))
    maha = (diff[..., None, :] @ torch.linalg.solve(cov_l + cov_d, diff[..., None]))[..., 0, 0]
    accept = ok_d & ok_l & (maha <= cfg.gate)
    info_l, info_d = torch.linalg.inv(cov_l), torch.linalg.inv(cov_d)
    cov_f = torch.linalg.inv(info_l + info_d)
    p_f = (cov_f @ (info_l @ lifted.nan_to_num()[..., None] + info_d @ p_d.nan_to_num()[..., None]))[..., 0]
    joints = torch.where(accept[..., None], p_f, lifted)
    # move the joints without accepted depth along with the person's fused ones
    shift = torch.where(accept[..., None], p_f - lifted, torch.full_like(lifted, float("nan")))
    median_shift = torch.nanmedian(shift, dim=1).values.nan_to_num()  # [N, 3]
    joints = torch.where((~accept & ok_l)[..., None], lifted + median_shift[:, None], joints)
    depth_only = ok_d & ~ok_l
    joints = torch.where(depth_only[..., None], p_d, joints)
    cov = torch.where(accept[..., None, None], cov_f, torch.where(depth_only[..., None, None], cov_d, cov_l))
    unc = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1).sqrt()
    source = torch.where(accept, SOURCE_FUSED, torch.where(depth_only, SOURCE_DEPTH, source)).to(torch.uint8)
    unc = torch.where(source == SOURCE_INVALID, torch.full_like(unc, float("nan")), unc)
    return Fused(joints, unc, source, joints[:, sk.PELVIS])
