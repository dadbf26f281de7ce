"""Training and evaluation samples: mocap poses seen by random robot cameras, with detector-like 2D errors.

One call of :func:`synthesize` turns a batch of mocap poses (metres, world frame Y up, floor y = 0) into
what the lifter sees at run time and what it should answer, all on one device, no Python loop over people
or joints:

1. **Body**: bone directions from the mocap, bone lengths from an adult reference (``REFERENCE_BONES``,
   metres) scaled to a stature drawn from an adult prior (:mod:`abspose.training.stature`) × per-bone jitter
   (left and right scaled alike), because the shared sets have few distinct skeletons (and the Daz one is
   not anatomical). Random mirror and any facing.
2. **Camera** (``CameraRange``): image size, focal length (log-uniform 300–2000 px), principal-point
   offset, camera height and roll; the person stands at a ground distance log-uniform in 0.8–12 m at an
   azimuth inside the image ± a margin, and the pitch is whatever puts the pelvis at a random image row
   (± margin) — samples needing a pitch outside a robot head's range are dropped. People may be partly
   out of frame.
3. **2D**: pinhole projection (keypoints are undistorted before lifting, so no distortion here), errors
   from a :class:`~abspose.training.noise2d.NoiseModel`, missed joints (random, whole limbs, and most joints
   outside the image) as a mask. Derived 2D joints (pelvis, neck) are missing when a source is.
4. **Depth readouts** (optional, the depth features of issue 5's readout): depth of the body *surface*
   in front of each joint (z minus a body radius), noise ∝ z², holes, range limit, background and
   occluder outliers.

Samples whose person could not be detected (head outside the image, or fewer than ``MIN_INSIDE`` input
joints inside) or whose camera would need an out-of-range pitch are dropped, so a batch may shrink.

Camera frame: REP-103 optical (x right, y down, z forward), metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from abspose import skeleton as sk
from abspose.training.noise2d import NoiseModel
from abspose.training.stature import REFERENCE_STATURE, StaturePrior

J = sk.NUM_JOINTS
IN = torch.tensor(sk.INPUT_INDEX)

# Adult reference bone lengths (metres, for a stature of stature.REFERENCE_STATURE = 1.73 m), anthropometric
# tables (Winter) adapted to the joint set's definitions (head = ear midpoint; foot = toe tip; neck = shoulder
# midpoint).
REFERENCE_BONES: dict[tuple[str, str], float] = {
    ("pelvis", "left_hip"): 0.095,
    ("pelvis", "right_hip"): 0.095,
    ("left_hip", "left_knee"): 0.43,
    ("right_hip", "right_knee"): 0.43,
    ("left_knee", "left_ankle"): 0.42,
    ("right_knee", "right_ankle"): 0.42,
    ("left_ankle", "left_foot"): 0.17,
    ("right_ankle", "right_foot"): 0.17,
    ("pelvis", "spine"): 0.27,
    ("spine", "neck"): 0.23,
    ("neck", "head"): 0.18,
    ("neck", "left_shoulder"): 0.18,
    ("neck", "right_shoulder"): 0.18,
    ("left_shoulder", "left_elbow"): 0.30,
    ("right_shoulder", "right_elbow"): 0.30,
    ("left_elbow", "left_wrist"): 0.25,
    ("right_elbow", "right_wrist"): 0.25,
}
BONE_JITTER = 0.03  # sd of a bone's length over the reference's × stature (fraction of the length)
MIN_INSIDE = 9  # of the 17 input joints, for a sample to count as a detectable person
_HEAD = sk.INPUT_JOINTS.index("head")
IMAGE_SIZES = ((640, 480), (1280, 720), (1920, 1080), (848, 480), (1024, 768), (480, 640), (1280, 1024))
LIMBS = tuple(
    tuple(sk.INPUT_JOINTS.index(n) for n in chain)
    for chain in (
        ("left_elbow", "left_wrist"),
        ("right_elbow", "right_wrist"),
        ("left_knee", "left_ankle", "left_foot"),
        ("right_knee", "right_ankle", "right_foot"),
    )
)


@dataclass
class CameraRange:
    """Ranges of the random cameras (pixels, metres, degrees)."""

    focal: tuple[float, float] = (300.0, 2000.0)
    principal_offset: float = 0.05  # fraction of the image size
    height: tuple[float, float] = (0.3, 1.9)
    pitch: tuple[float, float] = (-40.0, 30.0)  # down positive
    roll: float = 5.0
    distance: tuple[float, float] = (0.8, 12.0)  # ground distance camera -> pelvis
    margin: float = 0.15  # pelvis up to this fraction of the image size outside it


@dataclass
class DepthRange:
    """Depth sensor effects for synthetic readouts."""

    fraction: float = 0.5  # share of samples that get depth features at all
    noise: tuple[float, float] = (0.5e-3, 3e-3)  # σ = k z², k in this range (1/m)
    holes: tuple[float, float] = (0.0, 0.6)  # per-sample probability of an invalid readout
    max_range: tuple[float, float] = (3.5, 10.0)
    outliers: float = 0.08  # per-readout probability of background / occluder depth


@dataclass
class Batch:
    """Lifter inputs and targets. keypoints [B, 17, 2] px (undistorted), mask [B, 17] bool, K [B, 3, 3],
    image_size [B, 2] (w, h), joints [B, 18, 3] m (camera frame), depth [B, 17] m (surface; NaN = invalid).

    The camera pose, for placing more things in the same scene (:func:`ground_to_camera`): ``rotation``
    [B, 3, 3] and ``shift`` [B, 3] map the *ground frame* (metres, Y up, floor y = 0, origin on the floor
    under the person's pelvis) to the camera frame."""

    keypoints: torch.Tensor
    mask: torch.Tensor
    K: torch.Tensor
    image_size: torch.Tensor
    joints: torch.Tensor
    depth: torch.Tensor
    rotation: torch.Tensor
    shift: torch.Tensor
    stature: torch.Tensor  # [B] m, the body's stature (NaN: the mocap's own skeleton)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


_SHOULDERS = tuple(sk.BONES.index(("neck", side + "_shoulder")) for side in ("left", "right"))
_HIPS = tuple(sk.BONES.index(("pelvis", side + "_hip")) for side in ("left", "right"))
_FEET = [sk.JOINT_INDEX[f"{side}_{part}"] for side in ("left", "right") for part in ("ankle", "foot")]
# bones whose length depends on where a mocap set or a 2D detector puts its joints as much as on the person:
# the hip joint centres, the shoulder joints, the head and toe points, the spine point (docs/lifter.md)
CONVENTION_BONES = tuple(
    sk.BONES.index(bone)
    for bone in (
        ("pelvis", "left_hip"),
        ("pelvis", "right_hip"),
        ("neck", "left_shoulder"),
        ("neck", "right_shoulder"),
        ("neck", "head"),
        ("left_ankle", "left_foot"),
        ("right_ankle", "right_foot"),
        ("pelvis", "spine"),
        ("spine", "neck"),
    )
)


def bone_jitter(limbs: float = BONE_JITTER, conventions: float | None = None) -> torch.Tensor:
    """Per-bone sd [len(skeleton.BONES)] of the bone-length jitter (fraction of the length): ``conventions``
    (default: ``limbs``) for CONVENTION_BONES, ``limbs`` for the others."""
    sd = torch.full((len(sk.BONES),), limbs)
    sd[list(CONVENTION_BONES)] = limbs if conventions is None else conventions
    return sd


def _rand(shape, lo, hi, dev, g) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, device=dev, generator=g)


def _log_uniform(shape, lo, hi, dev, g) -> torch.Tensor:
    return torch.exp(_rand(shape, math.log(lo), math.log(hi), dev, g))


def retarget(
    poses: torch.Tensor,
    g: torch.Generator | None = None,
    prior: StaturePrior | None = None,
    jitter: float | torch.Tensor = BONE_JITTER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Poses [B, J, 3] with bone directions kept and lengths = reference × stature / REFERENCE_STATURE ×
    per-bone jitter, and the statures [B] (m).

    Statures from ``prior`` (adult women and men, :class:`~abspose.training.stature.StaturePrior`; its
    sd 0 gives every body the mean of its sex), women's shoulders narrower and hips wider, jitter ~ N(1,
    jitter) per bone (one sd, or one per bone as :func:`bone_jitter` gives), the mean of a left and a right
    draw for both sides of a pair (so sd / √2 there). A monocular lifter cannot see body size, so this spread
    sets the floor of its depth error, and the prior's mean where its distances are unbiased.
    """
    prior = prior or StaturePrior()
    b, dev = poses.shape[0], poses.device
    ref = torch.tensor([REFERENCE_BONES[bone] for bone in sk.BONES], device=dev)
    pair = torch.tensor([sk.BONES.index(_mirror(bone)) for bone in sk.BONES], device=dev)
    sd = torch.as_tensor(jitter, dtype=torch.float32, device=dev)
    noise = 1 + sd * torch.randn(b, len(sk.BONES), device=dev, generator=g).clamp(-2.5, 2.5)
    noise = 0.5 * (noise + noise[:, pair])  # left and right alike
    stature, female = prior.sample(b, dev, g)
    breadth = torch.ones(len(sk.BONES), device=dev)
    breadth[list(_SHOULDERS)] = prior.female_shoulders
    breadth[list(_HIPS)] = prior.female_hips
    lengths = ref * noise * torch.where(female[:, None], breadth, 1.0) * (stature / REFERENCE_STATURE)[:, None]
    idx = torch.tensor(sk.BONE_INDEX, device=dev)
    vec = poses[:, idx[:, 1]] - poses[:, idx[:, 0]]
    vec = vec / vec.norm(dim=-1, keepdim=True).clamp(min=1e-6) * lengths[..., None]
    out = forward_kinematics(poses[:, sk.PELVIS], vec)
    # the lowest foot stays where it was (on the floor when it was): longer legs must not sink into it
    out[..., 1] += (poses[:, _FEET, 1].amin(1) - out[:, _FEET, 1].amin(1))[:, None]
    return out, stature


def forward_kinematics(root: torch.Tensor, bones: torch.Tensor) -> torch.Tensor:
    """Joints [B, J, 3] from the pelvis [B, 3] and the parent → child vectors [B, 17, 3] (``sk.BONES`` order)."""
    out = root.new_zeros(root.shape[0], sk.NUM_JOINTS, 3)
    out[:, sk.PELVIS] = root
    for k, (parent, child) in enumerate(sk.BONE_INDEX):  # 17 bones, parents before children
        out[:, child] = out[:, parent] + bones[:, k]
    return out


def _mirror(bone: tuple[str, str]) -> tuple[str, str]:
    names = sk.JOINT_NAMES
    return tuple(names[sk.FLIP_PERMUTATION[sk.JOINT_INDEX[n]]] for n in bone)  # type: ignore[return-value]


def rot_y(a: torch.Tensor) -> torch.Tensor:
    c, s, z, o = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).view(-1, 3, 3)


def rot_x(a: torch.Tensor) -> torch.Tensor:
    c, s, z, o = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).view(-1, 3, 3)


def rot_z(a: torch.Tensor) -> torch.Tensor:
    c, s, z, o = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).view(-1, 3, 3)


_FLIP = (-1.0, -1.0, 1.0)


def ground_to_camera(points: torch.Tensor, rotation: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Ground-frame points [B, P, 3] (Y up, origin under the person) -> camera frame [B, P, 3].

    The ground frame looks along +z from the camera, so +x is the camera's left: a 180° turn about z makes
    it the level optical frame (x right, y down, z forward), then the camera's pitch and roll."""
    flip = torch.tensor(_FLIP, device=points.device, dtype=points.dtype)
    return ((points + shift[:, None]) * flip) @ rotation.transpose(1, 2)


def place_in_cameras(poses: torch.Tensor, cams: CameraRange, g: torch.Generator | None = None):
    """World poses [B, J, 3] (Y up) -> camera-frame joints [B, J, 3], K [B, 3, 3], image size [B, 2],
    a bool [B] of samples whose camera pitch is within range, and the camera pose (rotation [B, 3, 3],
    shift [B, 3]; :func:`ground_to_camera`)."""
    b, dev = poses.shape[0], poses.device
    sizes = torch.tensor(IMAGE_SIZES, device=dev, dtype=poses.dtype)
    size = sizes[torch.randint(len(IMAGE_SIZES), (b,), device=dev, generator=g)]
    f = _log_uniform((b,), *cams.focal, dev, g)
    fx, fy = f, f * _rand((b,), 0.99, 1.01, dev, g)
    c = size / 2 + (torch.rand(b, 2, device=dev, generator=g) - 0.5) * 2 * cams.principal_offset * size
    K = torch.zeros(b, 3, 3, device=dev, dtype=poses.dtype)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = fx, fy, c[:, 0], c[:, 1], 1.0
    # person: any facing, pelvis at the origin horizontally
    root = poses[:, sk.PELVIS].clone()
    root[:, 1] = 0
    body = (poses - root[:, None]) @ rot_y(_rand((b,), 0, 2 * math.pi, dev, g)).transpose(1, 2)
    # where the pelvis should appear: a column -> azimuth, a row -> pitch
    m = cams.margin
    target = (torch.rand(b, 2, device=dev, generator=g) * (1 + 2 * m) - m) * size
    azimuth = torch.atan((target[:, 0] - c[:, 0]) / fx)
    dist = _log_uniform((b,), *cams.distance, dev, g)
    height = _rand((b,), *cams.height, dev, g)
    forward = dist * torch.cos(azimuth)
    elevation = torch.atan2(height - body[:, sk.PELVIS, 1], forward)  # pelvis below the horizon: > 0
    pitch = elevation - torch.atan((target[:, 1] - c[:, 1]) / fy)
    ok = (pitch >= math.radians(cams.pitch[0])) & (pitch <= math.radians(cams.pitch[1]))
    # the pelvis lands at the target column
    shift = torch.stack([-dist * torch.sin(azimuth), -height, forward], -1)
    roll = torch.deg2rad(_rand((b,), -cams.roll, cams.roll, dev, g))
    rot = rot_z(roll) @ rot_x(pitch)  # camera pitched down by `pitch`: the scene moves up in the image
    cam = ground_to_camera(body, rot, shift)
    ok &= (cam[..., 2] > 0.2).all(-1)
    return cam, K, size, ok, rot, shift


def project(joints: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-frame points [B, J, 3] -> pixels [B, J, 2] with intrinsics K [B, 3, 3] (no distortion)."""
    z = joints[..., 2:3].clamp(min=1e-6)
    xy = joints[..., :2] / z
    return xy * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]


def inside_image(pixels: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Pixels [B, P, 2] -> bool [B, P]: inside an image of size [B, 2] (w, h) px, borders included."""
    return ((pixels >= 0) & (pixels <= size[:, None])).all(-1)


def _missing(keypoints, size, dev, g, p_random=0.03, p_limb=0.1, p_outside=0.8) -> torch.Tensor:
    b, j = keypoints.shape[:2]
    outside = ~inside_image(keypoints, size)
    miss = torch.rand(b, j, device=dev, generator=g) < p_random
    miss |= outside & (torch.rand(b, j, device=dev, generator=g) < p_outside)
    limb = torch.randint(len(LIMBS), (b,), device=dev, generator=g)
    drop = torch.rand(b, device=dev, generator=g) < p_limb
    for k, chain in enumerate(LIMBS):  # 4 limb chains, not joints
        miss[:, list(chain)] |= (drop & (limb == k))[:, None]
    mask = ~miss
    for name, (a, c) in sk.DERIVED.items():
        i, ia, ic = (sk.INPUT_JOINTS.index(n) for n in (name, a, c))
        mask[:, i] = mask[:, ia] & mask[:, ic]
    return mask


def depth_readouts(joints: torch.Tensor, rng: DepthRange, g: torch.Generator | None = None) -> torch.Tensor:
    """Synthetic surface-depth readouts [B, 17] (metres, NaN = invalid) at the input joints."""
    b, dev = joints.shape[0], joints.device
    z = joints[:, IN.to(dev), 2]
    radius = torch.tensor(sk.BODY_RADIUS, device=dev)[IN.to(dev)]
    d = z - radius * _rand((b, 1), 0.6, 1.2, dev, g)
    k = _rand((b, 1), *rng.noise, dev, g)
    d = d + k * z**2 * torch.randn(d.shape, device=dev, generator=g)
    outlier = torch.rand(d.shape, device=dev, generator=g) < rng.outliers
    behind = torch.rand(d.shape, device=dev, generator=g) < 0.5
    wrong = torch.where(behind, z + _rand(d.shape, 0.3, 4.0, dev, g), z * _rand(d.shape, 0.3, 0.9, dev, g))
    d = torch.where(outlier, wrong, d)
    hole = torch.rand(d.shape, device=dev, generator=g) < _rand((b, 1), *rng.holes, dev, g)
    hole |= d > _rand((b, 1), *rng.max_range, dev, g)
    hole |= (torch.rand(b, 1, device=dev, generator=g) >= rng.fraction).expand_as(hole)
    return torch.where(hole, torch.full_like(d, float("nan")), d)


def synthesize(
    poses: torch.Tensor,
    noise: NoiseModel,
    cams: CameraRange | None = None,
    depth: DepthRange | None = None,
    g: torch.Generator | None = None,
    prior: StaturePrior | None = None,
    jitter: float | torch.Tensor | None = BONE_JITTER,
) -> Batch:
    """Mocap poses [B, J, 3] (world, Y up) -> a Batch of at most B samples (out-of-range cameras dropped).
    ``jitter``: the bone-length jitter of :func:`retarget` (None: the poses' own bones, statures NaN)."""
    cams = cams or CameraRange()
    dev = poses.device
    stature = torch.full(poses.shape[:1], float("nan"), device=dev)
    if jitter is not None:
        poses, stature = retarget(poses, g, prior, jitter)
    flip = torch.rand(poses.shape[0], device=dev, generator=g) < 0.5
    mirrored = poses[:, list(sk.FLIP_PERMUTATION)] * torch.tensor([-1.0, 1.0, 1.0], device=dev)
    poses = torch.where(flip[:, None, None], mirrored, poses)
    joints, K, size, ok, rot, shift = place_in_cameras(poses, cams, g)
    true2d = project(joints[:, IN.to(dev)], K)
    inside = inside_image(true2d, size)
    # a person-detector needs the face and most of the body in view
    ok &= inside[:, _HEAD] & (inside.sum(1) >= MIN_INSIDE)
    joints, K, size, true2d, rot, shift = joints[ok], K[ok], size[ok], true2d[ok], rot[ok], shift[ok]
    stature = stature[ok]
    height = (true2d[..., 1].amax(1) - true2d[..., 1].amin(1)).clamp(min=4.0)
    keypoints = true2d + noise.sample(height, g)
    mask = _missing(keypoints, size, dev, g)
    if depth is None:
        d = torch.full(mask.shape, float("nan"), device=dev)
    else:
        d = depth_readouts(joints, depth, g)
    return Batch(keypoints, mask, K, size, joints, d, rot, shift, stature)
