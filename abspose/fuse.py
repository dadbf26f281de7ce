"""Fuse the lifted pose with depth readouts: one depth correction per person, a source and an uncertainty
per joint.

A monocular lifter gets the 2D pose right and the person's size/distance wrong together (a bigger person
farther away looks the same), so depth is used to fix exactly that: the whole lifted skeleton is scaled
about the camera centre by s, which keeps every joint on its 2D ray and its shape intact. Batched over
people and joints, no Python loop:

- per joint with a readout: the depth point z_d = surface + offset (a depth camera sees the body surface)
  and the joint's own estimate s_j = z_d / z_lifted, with σ(s_j) from the readout's σ and the lifter's
  root-relative uncertainty of that joint. The offset is predicted from the lifted pose itself
  (``surface_model``, :func:`abspose.surface.readout_offsets`: the same patch cast at the lifted body's
  capsules, along the keypoint's ray where the readout looked), since it depends on the view — the pelvis
  lies 9 cm behind the belly seen from the front, 16 cm behind the near hip seen from the side; that body
  is first turned about its spine towards the depth image's torso plane (``orient``: the lifter's yaw is
  its weakest part on real people). Without the surface model: the constant ``skeleton.BODY_RADIUS``;
- consensus: s_med = median of the s_j; joints with |s_j − s_med| > ``inlier`` σ(s_j) are outliers
  (occluders, self-occlusion, background in the patch) and the rest give the inverse-variance mean s;
- gate: if s disagrees with the lifter's own root depth beyond both uncertainties (χ², 1 dof,
  ``gate``), or fewer than ``min_joints`` joints agree, the person stays monocular (all LIFTED);
- joints = s × lifted, then the whole person moves along the rays towards where the ``anchors``' own
  readouts put the pelvis (its own readout; the hips' through the lifted hip-to-pelvis depth, with that
  relative error added; gain from the variances; ``refine_relative``: against the pelvis's relative error
  only, since s already used the readouts) — the shape stays the lifter's. Source FUSED for joints whose
  readout was used, LIFTED for the others (moved along), DEPTH for a joint only depth could place (its ray
  at z_d), INVALID where neither could. Uncertainty (metres, 3D) = sqrt(relative part² + (z σ_s)²), less
  what the anchors' readouts explained plus their share of the readouts' model error (``offset_sigma``).
- :func:`lift_with_depth` (what the node runs): lift monocular, fuse, then lift again with the readouts
  that passed as the lifter's depth features (depthpose) and fuse that. Ungated features would let an
  occluder's depth pull the whole person forward; gated, they improve MRPE and MPJPE (docs/depth.md).

No joint is pulled to its own readout (the anchors move the whole person): patches on thin limbs mix
surfaces, and on the rendered-depth evaluation (docs/depth.md) per-joint fusion made MPJPE 30 mm worse than
the lifter's shape; pulling the torso joints each to their own readout cost 4-10 % MPJPE beyond 5 m.
Frames: camera optical frame, metres; keypoints are ideal pixels of the colour camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from abspose import skeleton as sk
from abspose.depth import Readout
from abspose.lifter import Lifter, lift
from abspose.surface import readout_offsets

# Skeleton.msg joint_source constants
SOURCE_INVALID, SOURCE_DEPTH, SOURCE_LIFTED, SOURCE_FUSED, SOURCE_GROUND, SOURCE_TRACK = 0, 1, 2, 3, 4, 5


@dataclass
class FuseConfig:
    gate: float = 10.83  # χ²(1) at 99.9 %: depth vs lifter disagreement that sends a person back to the lifter
    inlier: float = 3.0  # σ from the consensus scale for a joint's readout to count
    min_joints: int = 2  # readouts that must agree
    lift_scale: float = 1.25  # the lifter's expected |error| -> σ per axis
    sigma_scale_min: float = 0.02  # floor of σ(s): radius biases and the pose's depth errors do not average out
    # floor of the lifter's own σ(s): it cannot see body size (0.06, the stature prior's sd, scored no better:
    # docs/depth.md)
    lifter_scale_sigma: float = 0.05
    refine: float = 1.0  # 0: the person keeps the consensus scale; 1: full update towards the anchors' readouts
    # joint-behind-readout offsets from the lifted body (surface.py) instead of the constant BODY_RADIUS:
    # the offset depends on the view (docs/depth.md: MRPE < 5 m 37 vs 62 mm on the renders)
    surface_model: bool = True
    # weigh the pelvis readout against the pelvis's relative error only (the person's scale already used
    # that readout): 0.3 mm better on the renders, but the TU/e pelvis then lies up to 11 cm behind the
    # surface (issue 5 asks <= 10), so off (docs/depth.md)
    refine_relative: bool = False
    # how far a readout + offset may be from the joint beyond the sensor's σ (the offset model, the patch
    # seeing another surface), 5 cm as on the renders; enters only the reported uncertainty, with the weight
    # the pelvis readout got (without it only 73 % of the node's joint errors were within 2σ < 3 m)
    offset_sigma: float = 0.05
    # with surface_model: cast the readouts at the lifted body turned about its spine to face the way the depth
    # image's torso plane faces (:func:`orient`); the output keeps the lifter's pose. On the real TU/e frames
    # the torso plane is 3-6 deg from frontal where the lifter says 30-34 deg; without it the surface model
    # puts the TU/e pelvis up to 11.6 cm behind the surface (docs/depth.md)
    orient: bool = True
    orient_prior: float = 0.35  # rad, σ of the lifter's own torso yaw error
    orient_gate: float = 9.0  # χ²(1): a larger yaw disagreement leaves the lifted body as it is
    # joints whose own readouts the person finally moves towards (the pelvis's directly, a hip's through the
    # lifted hip-to-pelvis depth): with the hips the pelvis is anchored in 95 % of the renders, not 80-84 %
    anchors: tuple[str, ...] = ("pelvis", "left_hip", "right_hip")


@dataclass
class Fused:
    """joints [N, J, 3] m, uncertainty [N, J] m, source [N, J] uint8 (SOURCE_*), root [N, 3] m,
    scale [N]: the factor applied to the lifted person (1 = monocular), scale_sigma [N] its 1-σ (relative:
    the person's distance is uncertain by that share; monocular: the lifter's own)."""

    joints: torch.Tensor
    uncertainty: torch.Tensor
    source: torch.Tensor
    root: torch.Tensor
    scale: torch.Tensor
    scale_sigma: torch.Tensor


def relative_error(fused: Fused) -> torch.Tensor:
    """Each joint's uncertainty [N, J] m less the part the person's placement (distance × scale σ) explains."""
    placement = fused.joints[..., 2].abs().nan_to_num(0.0) * fused.scale_sigma[:, None]
    return torch.sqrt(torch.maximum(fused.uncertainty**2 - placement**2, (0.3 * fused.uncertainty) ** 2))


def rescale(fused: Fused, factor: torch.Tensor, sigma: torch.Tensor) -> Fused:
    """People [N] moved along their rays by ``factor`` [N] (about the camera centre: the 2D pose and the shape
    stay), their scale's σ now ``sigma`` [N]: each joint's uncertainty keeps its relative part and takes the
    new placement part (distance × σ) instead of the old one."""
    f = factor.to(fused.joints)
    z = fused.joints[..., 2].abs().nan_to_num(0.0)
    unc = torch.sqrt((relative_error(fused) * f[:, None]) ** 2 + (z * f[:, None] * sigma[:, None]) ** 2)
    joints = fused.joints * f[:, None, None]
    return Fused(joints, unc, fused.source.clone(), fused.root * f[:, None], fused.scale * f, sigma.to(f))


def fuse(
    lifted: torch.Tensor,
    lifted_sigma: torch.Tensor,
    keypoints: torch.Tensor,
    K: torch.Tensor,
    readout: Readout | None,
    cfg: FuseConfig | None = None,
) -> Fused:
    """lifted [N, J, 3] m and its expected error [N, J] m; keypoints [N, J, 2] ideal colour pixels; K [3, 3]
    (or [N, 3, 3]) of the colour camera; readout (surface depth per joint) or None (monocular: all LIFTED)."""
    cfg = cfg or FuseConfig()
    n = lifted.shape[0]
    dev, dt = lifted.device, lifted.dtype
    nan = torch.tensor(float("nan"), device=dev, dtype=dt)
    ok_l = torch.isfinite(lifted).all(-1)
    eps = (cfg.lift_scale * lifted_sigma.to(dev, dt)).nan_to_num(1.0)
    # the lifter's error split into the person's placement (its root's) and the joint's own, relative part
    rel = torch.sqrt(torch.maximum(eps**2 - eps[:, sk.PELVIS : sk.PELVIS + 1] ** 2, (0.3 * eps) ** 2))
    source = torch.where(ok_l, SOURCE_LIFTED, SOURCE_INVALID).to(torch.uint8)
    ones = torch.ones(n, device=dev, dtype=dt)
    root = lifted[:, sk.PELVIS]
    sig_root = (eps[:, sk.PELVIS] / root[:, 2].abs().clamp(min=1e-3)).clamp(min=cfg.lifter_scale_sigma)
    if readout is None or n == 0:
        return Fused(lifted, torch.where(ok_l, eps, nan), source, root, ones, sig_root)
    body = lifted  # the body the surface model casts the readouts at
    if cfg.orient and cfg.surface_model and readout.torso_normal is not None:
        body = orient(lifted, readout.torso_normal.to(dev, dt), readout.torso_sigma.to(dev, dt), cfg)
    K = K.to(dev, dt).expand(n, 3, 3)
    xy = (keypoints.to(dev, dt) - K[:, None, :2, 2]) / torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None]
    z_d = readout.surface.to(dev, dt) + surface_offsets(body, readout, cfg, xy)
    ok_d = readout.valid.to(dev) & torch.isfinite(z_d) & torch.isfinite(xy).all(-1)
    both = ok_d & ok_l & (lifted[..., 2] > 0)
    z_l = torch.where(both, lifted[..., 2], torch.ones_like(z_d))
    s_j = torch.where(both, z_d / z_l, nan)
    sig_j = torch.sqrt(readout.sigma.to(dev, dt).nan_to_num(1.0) ** 2 + rel**2) / z_l
    s_med = torch.nanmedian(s_j, dim=1).values  # [N]
    inlier = both & ((s_j - s_med[:, None]).abs() <= cfg.inlier * sig_j)
    w = torch.where(inlier, sig_j**-2, torch.zeros_like(sig_j))
    s = (w * s_j.nan_to_num()).sum(1) / w.sum(1).clamp(min=1e-12)
    sig_s = torch.sqrt(1 / w.sum(1).clamp(min=1e-12) + cfg.sigma_scale_min**2)
    agree = (s - 1) ** 2 <= cfg.gate * (sig_root**2 + sig_s**2)
    use = (inlier.sum(1) >= cfg.min_joints) & agree & torch.isfinite(root).all(-1)
    scale = torch.where(use, s, ones)
    fused = inlier & use[:, None]
    # the person then moves along the rays towards where the anchors' readouts put the root (the pelvis and
    # hips: the body's largest surfaces), weighted by the variances; the whole lifted skeleton moves with it,
    # so the shape is kept
    z_all = lifted[..., 2].abs().nan_to_num(1.0)
    var_j = rel**2 + (z_all * scale[:, None] * sig_s[:, None]) ** 2
    p = sk.PELVIS
    # what the anchors' own readouts say of the root: the pelvis's directly; a hip's through the lifted
    # hip-to-pelvis depth, with that joint's relative error added to its readout's
    a = [sk.JOINT_INDEX[name] for name in cfg.anchors]
    z_a = z_all[:, a].clamp(min=1e-3)
    var_a = readout.sigma[:, a].to(dev, dt).nan_to_num(1.0) ** 2
    var_a = var_a + torch.where(torch.tensor([i != p for i in a], device=dev), rel[:, a] ** 2, 0.0)
    w_a = torch.where(fused[:, a], (z_a / z_all[:, p : p + 1].clamp(min=1e-3)) ** 2 / var_a, 0.0)
    anchored = w_a.sum(1) > 0
    var_d = 1 / w_a.sum(1).clamp(min=1e-12)
    # the person's scale came from these same readouts: with refine_relative only the pelvis's relative
    # error is weighed against its readout (else the readout's information is counted twice)
    var_g = rel[:, p] ** 2 if cfg.refine_relative else var_j[:, p]
    gain = torch.where(anchored, var_g / (var_g + var_d), torch.zeros_like(var_d)) * cfg.refine
    s_a = (z_d[:, a] / body[:, a, 2].clamp(min=1e-3)).nan_to_num()  # through the body the offsets were cast at
    own = torch.where(anchored, (w_a * s_a).sum(1) * var_d / scale, ones)
    factor = scale * (1 + gain * (own - 1))
    joints = lifted * factor[:, None, None]
    # the placement variance shrinks by what the anchors' readouts explained; their model error (offset,
    # patch), which σ_d leaves out, comes in with the weight they got
    z_p = z_all[:, p : p + 1].clamp(min=1e-3)
    explained = (gain[:, None] * var_g[:, None] / z_p**2) * z_all**2
    model_err = (gain * cfg.offset_sigma)[:, None] * z_all / z_p
    unc = torch.where(use[:, None], torch.sqrt((var_j - explained).clamp(min=0) + model_err**2), eps)
    depth_only = ok_d & ~ok_l
    joints = torch.where(
        depth_only[..., None], torch.cat([xy, torch.ones_like(xy[..., :1])], -1) * z_d[..., None], joints
    )
    unc = torch.where(depth_only, readout.sigma.to(dev, dt), unc)
    source = torch.where(fused, SOURCE_FUSED, torch.where(depth_only, SOURCE_DEPTH, source)).to(torch.uint8)
    unc = torch.where(source == SOURCE_INVALID, nan, unc)
    return Fused(joints, unc, source, joints[:, sk.PELVIS], factor, torch.where(use, sig_s, sig_root))


def orient(lifted: torch.Tensor, normal: torch.Tensor, normal_sigma: torch.Tensor, cfg: FuseConfig) -> torch.Tensor:
    """Lifted people [N, J, 3] (m) turned about their spine (pelvis -> neck, through the pelvis) towards the
    measured torso plane ``normal`` [N, 3] (facing the camera; σ ``normal_sigma`` [N] rad): by the measured
    yaw difference Δ weighted against the lifter's own yaw error (``orient_prior``), not at all where Δ
    exceeds the gate, either normal is missing or the lifted torso is seen edge-on. The pelvis stays."""
    p, neck = lifted[:, sk.PELVIS], lifted[:, sk.JOINT_INDEX["neck"]]
    axis = torch.nn.functional.normalize(neck - p, dim=-1)
    lateral = (
        lifted[:, sk.JOINT_INDEX["left_hip"]]
        - lifted[:, sk.JOINT_INDEX["right_hip"]]
        + lifted[:, sk.JOINT_INDEX["left_shoulder"]]
        - lifted[:, sk.JOINT_INDEX["right_shoulder"]]
    )
    own = torch.cross(lateral, axis, dim=-1)
    own = torch.where(((own * p).sum(-1) > 0)[:, None], -own, own)  # the side that faces the camera
    a = own - (own * axis).sum(-1, keepdim=True) * axis  # both normals in the plane across the spine
    b = normal - (normal * axis).sum(-1, keepdim=True) * axis
    delta = torch.atan2((torch.cross(a, b, dim=-1) * axis).sum(-1), (a * b).sum(-1))
    var = cfg.orient_prior**2 + normal_sigma**2
    # a torso seen edge-on (lifted front > 60 deg from the line of sight) shows no plane to measure
    view = torch.nn.functional.normalize(-p, dim=-1)
    frontal = (torch.nn.functional.normalize(a, dim=-1) * view).sum(-1) >= 0.5
    ok = (b.norm(dim=-1) > 0.5) & (a.norm(dim=-1) > 0.5 * own.norm(dim=-1)) & (delta**2 <= cfg.orient_gate * var)
    ok &= frontal
    ok &= torch.isfinite(delta) & torch.isfinite(lifted).all(-1).all(-1)
    theta = torch.where(ok, delta * cfg.orient_prior**2 / var, torch.zeros_like(delta))
    v = lifted - p[:, None]
    u = axis[:, None].expand_as(v)
    c, s = theta.cos()[:, None, None], theta.sin()[:, None, None]
    turned = v * c + torch.cross(u, v, dim=-1) * s + u * (u * v).sum(-1, keepdim=True) * (1 - c)  # Rodrigues
    return torch.where(ok[:, None, None], turned + p[:, None], lifted)


def surface_offsets(
    lifted: torch.Tensor, readout: Readout, cfg: FuseConfig, centres: torch.Tensor | None = None
) -> torch.Tensor:
    """How far behind its readout each joint lies [N, J] (m): from the lifted body where possible, cast along
    the rays where the readouts looked (``centres`` [N, J, 2], normalized keypoints)."""
    radius = torch.tensor(sk.BODY_RADIUS, device=lifted.device, dtype=lifted.dtype).expand(lifted.shape[:2])
    if not cfg.surface_model or readout.patch is None:
        return radius
    patch = readout.patch.to(lifted.device, lifted.dtype)
    off = readout_offsets(lifted, patch, quantile=readout.quantile, centres=centres)
    return torch.where(torch.isfinite(off), off.clamp(0.0, 0.5), radius)


def lift_with_depth(
    lifter: Lifter,
    keypoints: torch.Tensor,
    confidence: torch.Tensor,
    K: torch.Tensor,
    readout: Readout | None,
    threshold: float = 0.5,
    features: bool = True,
    cfg: FuseConfig | None = None,
) -> Fused:
    """keypoints [N, 18, 2] ideal px, confidence [N, 18], K [3, 3] or [N, 3, 3], readout [N, 18] or None ->
    fused joints. With ``features``, a second lifter pass sees the readouts the first fusion accepted."""
    mono = lift(lifter, keypoints, confidence, K, None, threshold)
    fused = fuse(mono.joints, mono.uncertainty, keypoints, K, readout, cfg)
    if readout is None or not features:
        return fused
    accepted = readout.surface.to(fused.source.device)
    accepted = torch.where(fused.source == SOURCE_FUSED, accepted, torch.full_like(accepted, float("nan")))
    lifted = lift(lifter, keypoints, confidence, K, accepted, threshold)
    out = fuse(lifted.joints, lifted.uncertainty, keypoints, K, readout, cfg)
    # the scale is against the monocular lifter's distance (what a frame without depth gets), not against the
    # second pass, which saw the readouts already
    measured = (out.source == SOURCE_FUSED).any(1)
    ratio = out.root[:, 2] / mono.joints[:, sk.PELVIS, 2]
    out.scale = torch.where(measured & torch.isfinite(ratio) & (ratio > 0), ratio, out.scale)
    return out
