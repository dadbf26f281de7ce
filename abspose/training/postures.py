"""Postures the shared mocap lacks, made from real poses in joint-angle space (issue 29, item 4).

A pose splits into its heading frame (pelvis, world up, facing from the hips), the legs and trunk in that
frame, and the arms and head in the chest frame. A posture draws some of those angles from anatomical ranges
(sitting, crouching, kneeling, bending, reaching, leaning, lying) and keeps the rest from a real pose, or
recombines one clip's legs and trunk with another's arms and head, or turns a whole real pose over (tumbling);
forward kinematics then uses the reference bones (training rescales them). Standing postures turn about the
ankles until the centre of mass is over the feet; every posture is set on the floor, and half the tumbling
ones lifted off it. Frame: the mocap world frame, metres, Y up, floor y = 0.
"""

from __future__ import annotations

import copy
import math

import torch

from abspose import skeleton as sk
from abspose.ground import ContactConfig
from abspose.training.synth import REFERENCE_BONES, forward_kinematics, rot_x, rot_y, rot_z

KINDS = ("sitting", "crouching", "kneeling", "bending", "reaching", "leaning", "lying", "recombined", "tumbling")
# kinds whose feet carry the body: balanced over them
STANDING = ("crouching", "bending", "reaching", "leaning", "recombined")
# kinds of which half leave the floor (a flip, a jump), the lowest joint up to MAX_AIR above it
AIRBORNE = ("tumbling",)
MAX_AIR = 0.8

_BONE = {bone: k for k, bone in enumerate(sk.BONES)}
_SIDES = ("left", "right")
HIPS = [_BONE["pelvis", f"{s}_hip"] for s in _SIDES]
THIGHS = [_BONE[f"{s}_hip", f"{s}_knee"] for s in _SIDES]
SHANKS = [_BONE[f"{s}_knee", f"{s}_ankle"] for s in _SIDES]
FEET = [_BONE[f"{s}_ankle", f"{s}_foot"] for s in _SIDES]
TRUNK = [_BONE["pelvis", "spine"], _BONE["spine", "neck"]]
UPPER_ARMS = [_BONE[f"{s}_shoulder", f"{s}_elbow"] for s in _SIDES]
FOREARMS = [_BONE[f"{s}_elbow", f"{s}_wrist"] for s in _SIDES]
UPPER = [_BONE["neck", "head"], *(_BONE["neck", f"{s}_shoulder"] for s in _SIDES), *UPPER_ARMS, *FOREARMS]
_SIDE = torch.tensor([1.0, -1.0])  # +x is the person's left in the heading frame (x left, y up, z forward)

# Winter's segment masses (fraction of body mass) on the bones, centre at the bone's middle
_MASS = {"thigh": 0.100, "shank": 0.0465, "foot": 0.0145, "upper_arm": 0.028, "forearm": 0.022, "head": 0.081}
BONE_MASS = torch.zeros(len(sk.BONES))
BONE_MASS[THIGHS], BONE_MASS[SHANKS], BONE_MASS[FEET] = _MASS["thigh"], _MASS["shank"], _MASS["foot"]
BONE_MASS[UPPER_ARMS], BONE_MASS[FOREARMS] = _MASS["upper_arm"], _MASS["forearm"]
BONE_MASS[_BONE["neck", "head"]] = _MASS["head"]
BONE_MASS[TRUNK] = 0.497 / 2

_CONTACT = ContactConfig()
# how far above the floor each joint's centre stays: the feet's contact heights, elsewhere the body radius
CLEARANCE = torch.tensor(sk.BODY_RADIUS)
CLEARANCE[[sk.JOINT_INDEX[j] for j in _CONTACT.joints]] = torch.tensor(_CONTACT.joint_height)
_ANKLES = [sk.JOINT_INDEX[f"{s}_ankle"] for s in _SIDES]
_TOES = [sk.JOINT_INDEX[f"{s}_foot"] for s in _SIDES]
MAX_BALANCE = math.radians(40.0)  # the most the body turns about the ankles to balance
MAX_KNEE = 155.0  # degrees of knee flexion


def _unit(v: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(v, dim=-1)


def _frame(left: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] with columns (left, up, forward), ``left`` made orthogonal to the unit ``up``."""
    left = _unit(left - (left * up).sum(-1, keepdim=True) * up)
    return torch.stack([left, up, torch.linalg.cross(left, up)], -1)


def frames(poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Heading frames (world up, left from the hips) and chest frames (up from spine to neck, left from the
    shoulders) of poses [B, 18, 3]: [B, 3, 3] each, columns (left, up, forward)."""
    j = sk.JOINT_INDEX
    hips = poses[:, j["left_hip"]] - poses[:, j["right_hip"]]
    up = torch.zeros_like(hips)
    up[:, 1] = 1.0
    heading = _frame(hips * torch.tensor([1.0, 0.0, 1.0], device=poses.device), up)
    chest_up = _unit(poses[:, j["neck"]] - poses[:, j["spine"]])
    chest = _frame(poses[:, j["left_shoulder"]] - poses[:, j["right_shoulder"]], chest_up)
    return heading, chest


def bone_directions(poses: torch.Tensor) -> torch.Tensor:
    """Unit parent → child vectors [B, 17, 3] of poses [B, 18, 3]."""
    idx = torch.tensor(sk.BONE_INDEX, device=poses.device)
    return _unit(poses[:, idx[:, 1]] - poses[:, idx[:, 0]])


def _deg(shape, lo: float, hi: float, g: torch.Generator | None, dev) -> torch.Tensor:
    return torch.deg2rad(lo + (hi - lo) * torch.rand(shape, device=dev, generator=g))


def _limb(down: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Directions [B, 2, 3] of a left/right limb pair: ``down`` rad from straight down towards the front,
    ``out`` rad outwards, each [B, 2]."""
    side = _SIDE.to(down.device)
    return torch.stack([side * torch.sin(out), -torch.cos(down) * torch.cos(out), torch.sin(down) * torch.cos(out)], -1)


def _foot(pitch: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """Ankle → toe [B, 2, 3]: ``pitch`` rad below the forward horizontal (past 90°: pointing back, as when
    kneeling), ``yaw`` rad outwards."""
    side = _SIDE.to(pitch.device)
    c = torch.cos(pitch)
    return torch.stack([side * torch.sin(yaw) * c, -torch.sin(pitch), torch.cos(yaw) * c], -1)


def legs(thigh: torch.Tensor, knee: torch.Tensor, out: torch.Tensor, pitch: torch.Tensor, yaw: torch.Tensor):
    """Leg bone directions in the heading frame, [B, 8, 3] in HIPS + THIGHS + SHANKS + FEET order, from hip
    flexion ``thigh``, knee flexion ``knee`` (≥ 0), hip abduction ``out`` and the foot's pitch and yaw
    (rad, [B, 2] each: left, right)."""
    hip = torch.zeros(*thigh.shape, 3, device=thigh.device)
    hip[..., 0] = _SIDE.to(thigh.device)
    return torch.cat([hip, _limb(thigh, out), _limb(thigh - knee, out / 2), _foot(pitch, yaw)], 1)


def trunk(flex: torch.Tensor, lateral: torch.Tensor, upper: torch.Tensor, twist: torch.Tensor):
    """Trunk directions [B, 2, 3] (pelvis → spine, spine → neck) and the chest frame [B, 3, 3] in the heading
    frame: ``flex`` rad forward, ``lateral`` rad to the left, ``upper`` rad more flexion above the spine,
    the shoulders ``twist`` rad about the trunk (each [B])."""

    def up(f: torch.Tensor) -> torch.Tensor:
        c = torch.cos(lateral)
        return torch.stack([torch.sin(lateral), c * torch.cos(f), c * torch.sin(f)], -1)

    top = up(flex + upper)
    left = torch.stack([torch.cos(twist), torch.zeros_like(twist), -torch.sin(twist)], -1)
    return torch.stack([up(flex), top], 1), _frame(left, top)


class Posture:
    """A batch of postures being built: bone directions [B, 17, 3] in the heading frame, from real poses."""

    def __init__(self, lower_from: torch.Tensor, upper_from: torch.Tensor, g: torch.Generator | None = None):
        """``lower_from``: real poses [B, 18, 3] whose legs and trunk start the posture; ``upper_from``: real
        poses whose arms and head (in their chest frame) it wears."""
        self.g, self.dev, self.b = g, lower_from.device, lower_from.shape[0]
        heading, chest = frames(lower_from)
        self.dirs = bone_directions(lower_from) @ heading  # world -> heading frame (row vectors)
        self.chest = heading.transpose(1, 2) @ chest
        _, chest_b = frames(upper_from)
        self.upper = bone_directions(upper_from)[:, UPPER] @ chest_b  # in the chest frame

    def copy(self) -> Posture:
        """Another posture of the same real poses, built on independently."""
        other = copy.copy(self)
        other.dirs, other.chest = self.dirs.clone(), self.chest.clone()
        return other

    def deg(self, lo: float, hi: float, per_leg: bool = False) -> torch.Tensor:
        """Uniform angles in [lo, hi] degrees, as radians [B] (or [B, 2] per leg)."""
        return _deg((self.b, 2) if per_leg else (self.b,), lo, hi, self.g, self.dev)

    def set_legs(self, thigh, knee, out, pitch, yaw) -> None:
        knee = knee.clamp(0, math.radians(MAX_KNEE))
        self.dirs[:, HIPS + THIGHS + SHANKS + FEET] = legs(thigh, knee, out, pitch, yaw)

    def set_trunk(self, flex, lateral, upper, twist) -> None:
        self.dirs[:, TRUNK], self.chest = trunk(flex, lateral, upper, twist)

    def hang_arms(self, share: float) -> None:
        """Arms of ``share`` of the samples hang towards the floor, slightly forward (picking up)."""
        pick = torch.rand(self.b, device=self.dev, generator=self.g) < share
        down = torch.tensor([0.0, -1.0, 0.15], device=self.dev)
        for bones in (UPPER_ARMS, FOREARMS):
            jitter = 0.3 * (torch.rand(self.b, 2, 3, device=self.dev, generator=self.g) - 0.5)
            self.dirs[:, bones] = torch.where(pick[:, None, None], _unit(down + jitter), self.dirs[:, bones])

    def wear_upper(self) -> None:
        """The arms and head of ``upper_from`` in the current chest frame."""
        self.dirs[:, UPPER] = self.upper @ self.chest.transpose(1, 2)

    def reach(self, share: float) -> None:
        """Each arm, with probability ``share``, points at a target in front or to its side, from below the
        shoulder to overhead, the elbow bent up to 60°."""
        az, el, bend = self.deg(-30, 100, True), self.deg(-40, 85, True), self.deg(0, 60, True)
        side = _SIDE.to(self.dev)
        local = torch.stack([side * torch.sin(az) * torch.cos(el), torch.sin(el), torch.cos(az) * torch.cos(el)], -1)
        arm = local @ self.chest.transpose(1, 2)
        up = self.chest[:, None, :, 1].expand_as(arm)
        fore = _unit(arm * torch.cos(bend)[..., None] + up * torch.sin(bend)[..., None])
        pick = (torch.rand(self.b, 2, device=self.dev, generator=self.g) < share)[..., None]
        self.dirs[:, UPPER_ARMS] = torch.where(pick, arm, self.dirs[:, UPPER_ARMS])
        self.dirs[:, FOREARMS] = torch.where(pick, fore, self.dirs[:, FOREARMS])

    def joints(self) -> torch.Tensor:
        """Joints [B, 18, 3] (heading frame, pelvis at the origin) with the reference bone lengths."""
        ref = torch.tensor([REFERENCE_BONES[bone] for bone in sk.BONES], device=self.dev)
        return forward_kinematics(torch.zeros(self.b, 3, device=self.dev), self.dirs * ref[:, None])


def centre_of_mass(joints: torch.Tensor) -> torch.Tensor:
    """[B, 3]: the body's centre of mass (Winter's segment masses at the bones' middles) of joints [B, 18, 3]."""
    idx = torch.tensor(sk.BONE_INDEX, device=joints.device)
    middle = (joints[:, idx[:, 0]] + joints[:, idx[:, 1]]) / 2
    mass = BONE_MASS.to(joints.device)
    return (middle * mass[:, None]).sum(1) / mass.sum()


def balance(joints: torch.Tensor) -> torch.Tensor:
    """Joints [B, 18, 3] (heading frame) turned about the line through the ankles (the x axis through their
    middle; ankles side by side stay put), the feet kept flat, until the centre of mass lies over the feet
    (between the ankles, less 3 cm, and the toes, less 2 cm, front to back), by at most MAX_BALANCE."""
    pivot = joints[:, _ANKLES].mean(1)
    com = centre_of_mass(joints) - pivot
    front = joints[:, _TOES, 2].mean(1) - pivot[:, 2] - 0.02
    target = com[:, 2].clamp(torch.minimum(torch.full_like(front, -0.03), front), front)
    # rotating by a about x: z' = y sin a + z cos a = r sin(a + phi), phi = atan2(z, y)
    r = com[:, 1:].norm(dim=-1).clamp(min=1e-6)
    phi = torch.atan2(com[:, 2], com[:, 1])
    a = (torch.asin((target / r).clamp(-1, 1)) - phi).clamp(-MAX_BALANCE, MAX_BALANCE)
    turned = (joints - pivot[:, None]) @ rot_x(a).transpose(1, 2) + pivot[:, None]
    turned[:, _TOES] = turned[:, _ANKLES] + joints[:, _TOES] - joints[:, _ANKLES]  # the feet stay as they were
    return turned


def on_floor(joints: torch.Tensor) -> torch.Tensor:
    """Joints [B, 18, 3] raised or lowered so the lowest one just clears the floor (y = 0) by its CLEARANCE."""
    lift = (joints[..., 1] - CLEARANCE.to(joints.device)).amin(1)
    return joints - torch.stack([torch.zeros_like(lift), lift, torch.zeros_like(lift)], -1)[:, None]


def _sitting(p: Posture) -> None:
    thigh = p.deg(65, 105)[:, None] + p.deg(-10, 10, True)
    p.set_legs(thigh, thigh - p.deg(-30, 30, True), p.deg(0, 20, True), p.deg(5, 30, True), p.deg(0, 25, True))
    p.set_trunk(p.deg(-20, 35), p.deg(-10, 10), p.deg(0, 20), p.deg(-20, 20))
    p.wear_upper()


def _crouching(p: Posture) -> None:
    thigh = p.deg(85, 140)[:, None] + p.deg(-8, 8, True)
    p.set_legs(thigh, thigh - p.deg(-55, -15, True), p.deg(5, 30, True), p.deg(10, 55, True), p.deg(0, 35, True))
    p.set_trunk(p.deg(10, 60), p.deg(-10, 10), p.deg(0, 25), p.deg(-20, 20))
    p.wear_upper()


def _kneeling(p: Posture) -> None:
    """Upright on both knees, sitting on the heels, or on one knee with the other foot forward."""
    variant = torch.randint(3, (p.b,), device=p.dev, generator=p.g)
    upright = (p.deg(-10, 25, True), p.deg(-98, -88, True), p.deg(150, 178, True))
    heels = (p.deg(35, 75, True), p.deg(-98, -88, True), p.deg(155, 178, True))
    # the front foot of a half kneel reaches the floor: its hip flexion from the kneeling leg's hip height
    thigh_len, shank_len = REFERENCE_BONES["left_hip", "left_knee"], REFERENCE_BONES["left_knee", "left_ankle"]
    hip = CLEARANCE[sk.JOINT_INDEX["left_knee"]] + thigh_len * torch.cos(upright[0].flip(1))
    shank = p.deg(-10, 20, True)
    reach = hip - CLEARANCE[_ANKLES[0]] - shank_len * torch.cos(shank)
    foot_fwd = (torch.acos((reach / thigh_len).clamp(-1, 1)), shank, p.deg(10, 25, True))
    one = torch.randint(2, (p.b, 1), device=p.dev, generator=p.g) == torch.arange(2, device=p.dev)
    half = tuple(torch.where(one, a, b) for a, b in zip(upright, foot_fwd, strict=True))
    thigh, shank, pitch = (
        torch.where((variant == 0)[:, None], u, torch.where((variant == 1)[:, None], h, k))
        for u, h, k in zip(upright, heels, half, strict=True)
    )
    p.set_legs(thigh, thigh - shank, p.deg(0, 15, True), pitch, p.deg(0, 20, True))
    p.set_trunk(torch.where(variant == 1, p.deg(0, 45), p.deg(-10, 30)), p.deg(-10, 10), p.deg(0, 20), p.deg(-20, 20))
    p.wear_upper()


def _bending(p: Posture) -> None:
    thigh = p.deg(-10, 25)[:, None] + p.deg(-5, 5, True)
    p.set_legs(thigh, p.deg(0, 45, True), p.deg(0, 15, True), p.deg(10, 20, True), p.deg(0, 25, True))
    p.set_trunk(p.deg(45, 110), p.deg(-15, 15), p.deg(0, 30), p.deg(-30, 30))
    p.wear_upper()
    p.hang_arms(0.5)


def _reaching(p: Posture) -> None:
    p.set_trunk(p.deg(-15, 35), p.deg(-20, 20), p.deg(0, 15), p.deg(-45, 45))
    p.wear_upper()
    p.reach(0.7)


def _leaning(p: Posture) -> None:
    sign = torch.where(torch.rand(p.b, device=p.dev, generator=p.g) < 0.5, -1.0, 1.0)
    p.set_trunk(p.deg(-25, 35), sign * p.deg(10, 35), p.deg(0, 15), p.deg(-30, 30))
    p.wear_upper()


def _lying(p: Posture) -> torch.Tensor:
    """On the back, front or side (a real pose turned flat), sitting on the floor with the legs out, or on
    hands and knees: the stages of lying down and getting up."""
    variant = torch.randint(3, (p.b,), device=p.dev, generator=p.g)
    flat = p.joints()
    turn = torch.where(torch.rand(p.b, device=p.dev, generator=p.g) < 0.5, -1.0, 1.0) * p.deg(75, 105)
    flat = flat @ (rot_z(p.deg(-70, 70)) @ rot_x(turn)).transpose(1, 2)
    sit = p.copy()
    sit.set_legs(p.deg(75, 100, True), p.deg(0, 40, True), p.deg(0, 20, True), p.deg(-40, 10, True), p.deg(0, 30, True))
    sit.set_trunk(p.deg(-35, 25), p.deg(-10, 10), p.deg(0, 20), p.deg(-20, 20))
    sit.wear_upper()
    crawl = p.copy()
    thigh = p.deg(-10, 20, True)
    crawl.set_legs(thigh, thigh - p.deg(-98, -88, True), p.deg(0, 15, True), p.deg(150, 178, True), p.deg(0, 20, True))
    crawl.set_trunk(p.deg(70, 100), p.deg(-10, 10), p.deg(-10, 10), p.deg(-15, 15))
    crawl.wear_upper()
    crawl.hang_arms(1.0)
    pick = variant[:, None, None]
    return torch.where(pick == 0, flat, torch.where(pick == 1, sit.joints(), crawl.joints()))


def _tumbling(p: Posture) -> torch.Tensor:
    """A real pose, wearing another's arms and head, turned over by 30-180° about a horizontal axis through its
    centre of mass in any direction: flips, cartwheels, handstands, falls."""
    p.wear_upper()
    joints = p.joints()
    axis = p.deg(0, 180)
    sign = torch.where(torch.rand(p.b, device=p.dev, generator=p.g) < 0.5, -1.0, 1.0)
    turn = rot_y(axis) @ rot_x(sign * p.deg(30, 180)) @ rot_y(-axis)
    com = centre_of_mass(joints)[:, None]
    return (joints - com) @ turn.transpose(1, 2) + com


_MAKE = {
    "sitting": _sitting,
    "crouching": _crouching,
    "kneeling": _kneeling,
    "bending": _bending,
    "reaching": _reaching,
    "leaning": _leaning,
    "lying": _lying,
    "recombined": Posture.wear_upper,
    "tumbling": _tumbling,
}


def make(kind: str, lower_from: torch.Tensor, upper_from: torch.Tensor, g: torch.Generator | None = None):
    """Postures of one ``kind`` (KINDS) [B, 18, 3] (world frame as the mocap: Y up, on the floor y = 0,
    facing +z), from real poses [B, 18, 3]: the legs and trunk of ``lower_from`` where the kind keeps them,
    the arms and head of ``upper_from``."""
    if kind not in _MAKE:
        raise ValueError(f"postures: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    p = Posture(lower_from, upper_from, g)
    joints = _MAKE[kind](p)
    joints = p.joints() if joints is None else joints
    if kind in STANDING:
        joints = balance(joints)  # about the ankles: where the floor is does not matter yet
    joints = on_floor(joints)
    if kind in AIRBORNE:
        up = torch.rand(p.b, device=p.dev, generator=g) * MAX_AIR
        joints[..., 1] += torch.where(torch.rand(p.b, device=p.dev, generator=g) < 0.5, up, 0.0)[:, None]
    return joints


def mixed(lower_from: torch.Tensor, upper_from: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """Postures [B, 18, 3] of every kind in equal shares (a random kind per sample)."""
    kind = torch.randint(len(KINDS), (lower_from.shape[0],), device=lower_from.device, generator=g)
    out = torch.empty_like(lower_from)
    for k, name in enumerate(KINDS):  # each kind batched
        sel = kind == k
        if sel.any():
            out[sel] = make(name, lower_from[sel], upper_from[sel], g)
    return out
