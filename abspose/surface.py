"""The body's surface as capsules around bones: what a depth camera sees of a skeleton.

Used twice: :mod:`abspose.training.render` draws it into depth images for the evaluation, and :mod:`abspose.fuse`
asks it how far behind the depth readout each joint of a *lifted* skeleton lies. That offset depends on
the pose and the view, not only on the joint: seen from the front the pelvis is ≈ 9 cm behind the belly,
seen from the side ≈ 16 cm behind the near hip's skin (more with an arm hanging in front); a hand held
before the belly or a flexed thigh brings the surface nearer still. A constant radius per joint
(``skeleton.BODY_RADIUS``) gets these wrong by several centimetres, all in the same direction (the
readout sees the *nearest* surfaces).

- :func:`body_capsules`: joints -> capsules, sized from adult girths and depths (thigh 7 cm radius,
  torso about ±9 cm deep, head 9 cm).
- :func:`hit_capsules`: exact ray/capsule intersections, batched over people.
- :func:`read_body`: the depth a patch readout (same patch and quantile as :func:`abspose.depth.read_depth`)
  sees on a skeleton's own body at given image points;
- :func:`readout_offsets`: per joint, joint depth minus that readout at the joint's own projection.

Frames: camera optical frame (x right, y down, z forward), metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from abspose import skeleton as sk

# (end a, end b, radius m): limbs along the skeleton's bones, the torso as five columns from the hips to the
# shoulders (the sides, the spine, and two halfway between: a flat front and back as on people, not a
# scalloped one that tilts a plane fitted to it), the hips' and shoulders' girdles and the head. An end is
# a joint or the midpoint of two.
CAPSULES: tuple[tuple[str | tuple[str, str], str | tuple[str, str], float], ...] = (
    ("left_hip", "left_knee", 0.07),
    ("right_hip", "right_knee", 0.07),
    ("left_knee", "left_ankle", 0.05),
    ("right_knee", "right_ankle", 0.05),
    ("left_ankle", "left_foot", 0.04),
    ("right_ankle", "right_foot", 0.04),
    ("left_shoulder", "left_elbow", 0.045),
    ("right_shoulder", "right_elbow", 0.045),
    ("left_elbow", "left_wrist", 0.038),
    ("right_elbow", "right_wrist", 0.038),
    ("left_hip", "right_hip", 0.09),
    ("left_shoulder", "right_shoulder", 0.06),
    ("left_hip", "left_shoulder", 0.08),
    ("right_hip", "right_shoulder", 0.08),
    (("pelvis", "left_hip"), ("neck", "left_shoulder"), 0.085),
    (("pelvis", "right_hip"), ("neck", "right_shoulder"), 0.085),
    ("pelvis", "spine", 0.09),
    ("spine", "neck", 0.08),
    ("neck", "head", 0.06),
    ("head", "head", 0.09),
)


def _ends(end: str | tuple[str, str]) -> tuple[int, int]:
    """An end's two joint indices (the same twice for a joint): its point is their midpoint."""
    a, b = (end, end) if isinstance(end, str) else end
    return sk.JOINT_INDEX[a], sk.JOINT_INDEX[b]


_CAP_A = tuple(zip(*(_ends(a) for a, _, _ in CAPSULES), strict=True))
_CAP_B = tuple(zip(*(_ends(b) for _, b, _ in CAPSULES), strict=True))
_CAP_R = tuple(r for _, _, r in CAPSULES)


def _points(joints: torch.Tensor, ends: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """The capsules' ends [P, C, 3] of people [P, J, 3]: midpoints of the two joints of each end."""
    return (joints[:, list(ends[0])] + joints[:, list(ends[1])]) / 2


@dataclass
class Capsules:
    """Segments a [..., C, 3], b [..., C, 3] and radii r [..., C] (metres, camera frame)."""

    a: torch.Tensor
    b: torch.Tensor
    r: torch.Tensor


def body_capsules(joints: torch.Tensor, per_person: bool = False, girth: torch.Tensor | None = None) -> Capsules:
    """Capsules of people [P, NUM_JOINTS, 3] (metres, camera frame): all people's capsules concatenated
    ([P·C]), or with ``per_person`` one set per person ([P, C]). ``girth`` [P]: each person's radii as a
    factor of the model's (default 1)."""
    r = torch.tensor(_CAP_R, device=joints.device, dtype=joints.dtype).expand(joints.shape[0], -1)
    if girth is not None:
        r = r * girth.to(r)[:, None]
    caps = Capsules(_points(joints, _CAP_A), _points(joints, _CAP_B), r)
    if per_person:
        return caps
    return Capsules(caps.a.reshape(-1, 3), caps.b.reshape(-1, 3), caps.r.reshape(-1))


def hit_capsules(rd: torch.Tensor, caps: Capsules) -> torch.Tensor:
    """Distance along unit rays rd [..., R, 3] from the origin to the nearest hit among capsules [..., C],
    [..., R] (inf = none). Ray/capsule intersection (cylinder body, then the spherical caps), after Íñigo
    Quílez's capIntersect."""
    a, b = caps.a, caps.b
    ba, oa = b - a, -a
    baba = (ba * ba).sum(-1).clamp(min=1e-12).unsqueeze(-2)  # [..., 1, C]
    baoa = (ba * oa).sum(-1).unsqueeze(-2)
    oaoa = (oa * oa).sum(-1).unsqueeze(-2)
    r2 = (caps.r**2).unsqueeze(-2)
    bard = rd @ ba.transpose(-1, -2)  # [..., R, C]
    rdoa = rd @ oa.transpose(-1, -2)
    qa = baba - bard**2
    qb = baba * rdoa - baoa * bard
    qc = baba * oaoa - baoa**2 - r2 * baba
    h = qb**2 - qa * qc
    t_body = (-qb - h.clamp(min=0).sqrt()) / qa.clamp(min=1e-12)
    y = baoa + t_body * bard
    body = (h >= 0) & (qa > 1e-12) & (y > 0) & (y < baba)
    # caps: the sphere at a (y <= 0) or at b (y >= baba)
    oc_rd = torch.where(y <= 0, rdoa, rd @ (-b).transpose(-1, -2))
    oc2 = torch.where(y <= 0, oaoa, (b * b).sum(-1).unsqueeze(-2))
    hc = oc_rd**2 - (oc2 - r2)
    t_cap = -oc_rd - hc.clamp(min=0).sqrt()
    t = torch.where(body, t_body, torch.where(hc > 0, t_cap, torch.full_like(t_cap, float("inf"))))
    t = torch.where(t > 0, t, torch.full_like(t, float("inf")))
    return t.amin(-1)


def read_body(
    joints: torch.Tensor,
    centres: torch.Tensor,
    patch: torch.Tensor,
    grid: int = 5,
    quantile: float = 0.3,
    min_hits: float = 0.2,
) -> torch.Tensor:
    """The depth a patch readout sees on each person's own body, [N, K] metres (NaN where it misses).

    joints [N, J, 3] (camera frame, metres; one skeleton per person); centres [N, K, 2] the patches' centres
    in normalized image coordinates (x/z, y/z); patch [N] their half-size in the same units (pixels / f).
    A ``grid`` × ``grid`` patch of rays is cast at the person's capsules and the ``quantile`` of the hit
    depths taken, as :func:`abspose.depth.read_depth` does on a depth image (``min_hits``: share of the
    rays that must hit)."""
    n, k = centres.shape[:2]
    dev, dt = joints.device, joints.dtype
    finite = torch.isfinite(joints).all(-1)
    joints = torch.where(finite[..., None], joints, torch.zeros_like(joints))  # at the eye: never hit
    steps = torch.linspace(-1, 1, grid, device=dev, dtype=dt)
    off = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), -1).view(-1, 2)  # [G², 2]
    ray_xy = centres[:, :, None] + off[None, None] * patch.to(dev, dt)[:, None, None, None]  # [N, K, G², 2]
    rays = torch.cat([ray_xy, torch.ones_like(ray_xy[..., :1])], -1)
    norm = rays.norm(dim=-1, keepdim=True)
    t = hit_capsules((rays / norm).reshape(n, -1, 3), body_capsules(joints, per_person=True))
    hit_z = t.view(n, k, -1) / norm[..., 0]
    hit_z = torch.where(torch.isfinite(hit_z), hit_z, torch.full_like(hit_z, float("nan")))  # misses: NaN
    seen = torch.nanquantile(hit_z, quantile, dim=-1)
    enough = torch.isfinite(hit_z).float().mean(-1) >= min_hits
    return torch.where(enough & torch.isfinite(centres).all(-1), seen, torch.full_like(seen, float("nan")))


def readout_offsets(
    joints: torch.Tensor, patch: torch.Tensor, grid: int = 5, quantile: float = 0.3, centres: torch.Tensor | None = None
) -> torch.Tensor:
    """How far behind its depth readout each joint lies, [N, J] metres (NaN where the patch misses the body):
    joint depth minus :func:`read_body`. joints [N, J, 3], patch [N] as there. ``centres`` [N, J, 2]: where
    the readouts looked (normalized keypoints, x/z, y/z); default the joints' own projections. With a real
    detector the two differ by the keypoint's error, and the readout saw the surface at the keypoint."""
    z = joints[..., 2]
    if centres is None:
        ok = torch.isfinite(joints).all(-1) & (z > 0)
        centres = torch.where(ok[..., None], joints[..., :2] / z[..., None].clamp(min=1e-6), torch.nan)
    return z - read_body(joints, centres, patch, grid, quantile)
