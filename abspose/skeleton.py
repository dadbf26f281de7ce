"""The joint set abspose publishes, in one place.

Every per-joint array in the package (2D keypoints, 3D joints, messages, TF) uses ``JOINT_NAMES`` order.
Positions are joint centres; ``pelvis`` is the midpoint of the two hip joints and ``neck`` the midpoint
of the two shoulder joints, for every source (detector and mocap alike), so a derived joint means the same
thing in training data and at run time.

``spine`` (mid-back, top of the lumbar spine region) has no detector landmark: it is an *output-only*
joint. The lifter takes the ``INPUT_JOINTS`` (all but spine) in 2D and outputs all ``NUM_JOINTS`` in 3D.

Sources:
  - BlazePose (33 landmarks, mediapipe order): ``BLAZEPOSE_SOURCES`` gives, per joint, the two landmark
    indices whose midpoint is the joint (the same index twice for a plain landmark; -1 for none).
    ``head`` is the midpoint of the ears (≈ skull centre), ``*_foot`` the foot-index landmark (toe tip).
  - CMU mocap: ``MOCAP_NAMES[convention][joint]`` names the source joint whose *position* is ours, for
    the 38-joint exp-map skeleton (``expmap``), CMU ASF (``asf``: names are bones and the position is the
    bone's **end**), and the BVH conversions (``bvh_cmu``: LeftUpLeg…; ``bvh_cmu_alt``: LeftHip…;
    ``bvh_daz``: lThigh…). ``<name>_end`` means the BVH End Site below ``<name>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

import torch

SKELETON_NAME = "abspose18"

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_foot",
    "right_foot",
    "spine",
    "neck",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
PELVIS = JOINT_INDEX["pelvis"]

# Joints with no detector landmark: predicted by the lifter only.
OUTPUT_ONLY: tuple[str, ...] = ("spine",)
INPUT_JOINTS: tuple[str, ...] = tuple(n for n in JOINT_NAMES if n not in OUTPUT_ONLY)
INPUT_INDEX: tuple[int, ...] = tuple(JOINT_INDEX[n] for n in INPUT_JOINTS)

# Joints defined as the midpoint of two others, for every source.
DERIVED: dict[str, tuple[str, str]] = {
    "pelvis": ("left_hip", "right_hip"),
    "neck": ("left_shoulder", "right_shoulder"),
}

# Bones as (parent, child) name pairs: a tree rooted at the pelvis.
BONES: tuple[tuple[str, str], ...] = (
    ("pelvis", "left_hip"),
    ("pelvis", "right_hip"),
    ("left_hip", "left_knee"),
    ("right_hip", "right_knee"),
    ("left_knee", "left_ankle"),
    ("right_knee", "right_ankle"),
    ("left_ankle", "left_foot"),
    ("right_ankle", "right_foot"),
    ("pelvis", "spine"),
    ("spine", "neck"),
    ("neck", "head"),
    ("neck", "left_shoulder"),
    ("neck", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"),
)
BONE_INDEX: tuple[tuple[int, int], ...] = tuple((JOINT_INDEX[a], JOINT_INDEX[b]) for a, b in BONES)
PARENTS: tuple[int, ...] = tuple(
    -1 if n == "pelvis" else next(JOINT_INDEX[a] for a, b in BONES if b == n) for n in JOINT_NAMES
)


def _flip_name(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


# Body radius in front of each joint (metres): a depth camera sees skin and clothes, the joint centre lies
# this far behind the surface (adult averages; used by depth synthesis and by the depth readout).
BODY_RADIUS: tuple[float, ...] = tuple(
    {
        "pelvis": 0.09,
        "hip": 0.09,
        "knee": 0.05,
        "ankle": 0.04,
        "foot": 0.03,
        "spine": 0.1,
        "neck": 0.06,
        "head": 0.08,
        "shoulder": 0.05,
        "elbow": 0.04,
        "wrist": 0.03,
    }[n.split("_")[-1]]
    for n in JOINT_NAMES
)

# FLIP_PERMUTATION[i] = index of the mirror joint of joint i (for horizontal-flip augmentation).
FLIP_PERMUTATION: tuple[int, ...] = tuple(JOINT_INDEX[_flip_name(n)] for n in JOINT_NAMES)
# The same over ``INPUT_JOINTS`` (indices into the lifter's 17 inputs).
INPUT_FLIP_PERMUTATION: tuple[int, ...] = tuple(INPUT_JOINTS.index(_flip_name(n)) for n in INPUT_JOINTS)

# --- BlazePose ------------------------------------------------------------------------------------
BLAZEPOSE_LANDMARKS: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
_BP = {name: i for i, name in enumerate(BLAZEPOSE_LANDMARKS)}
_BLAZEPOSE_OWN: dict[str, tuple[str, str]] = {
    "head": ("left_ear", "right_ear"),
    "left_foot": ("left_foot_index", "left_foot_index"),
    "right_foot": ("right_foot_index", "right_foot_index"),
}


def _blazepose_source(name: str) -> tuple[int, int]:
    if name in OUTPUT_ONLY:
        return (-1, -1)
    if name in DERIVED:
        a, b = DERIVED[name]
        return (_BP[a], _BP[b])
    a, b = _BLAZEPOSE_OWN.get(name, (name, name))
    return (_BP[a], _BP[b])


BLAZEPOSE_SOURCES: tuple[tuple[int, int], ...] = tuple(_blazepose_source(n) for n in JOINT_NAMES)


@lru_cache(maxsize=8)
def _blazepose_index(device: torch.device) -> torch.Tensor:
    return torch.tensor(BLAZEPOSE_SOURCES, device=device)


def from_blazepose(landmarks: torch.Tensor, confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map BlazePose landmarks to the joint set.

    landmarks: [..., 33, C] (pixels, any C); confidence: [..., 33] in [0, 1].
    Returns joints [..., NUM_JOINTS, C] (midpoints of the source pairs) and confidence [..., NUM_JOINTS]
    (the lower of the pair). Output-only joints get NaN coordinates and confidence 0.
    """
    src = _blazepose_index(landmarks.device)
    missing = src[:, 0] < 0
    idx = src.clamp(min=0)
    pts = landmarks[..., idx, :]  # [..., J, 2, C]
    joints = pts.mean(dim=-2)
    conf = confidence[..., idx].amin(dim=-1)
    joints = joints.masked_fill(missing[:, None], float("nan"))
    conf = conf.masked_fill(missing, 0.0)
    return joints, conf


# --- CMU mocap --------------------------------------------------------------------------------------
_SIDES = {"left": "l", "right": "r"}


def _cmu(per_side: Mapping[str, str], central: Mapping[str, str]) -> dict[str, str]:
    """Build a name table from per-side templates ('{s}' = side letter, '{S}' = 'Left'/'Right')."""
    out = dict(central)
    for part, template in per_side.items():
        for side, s in _SIDES.items():
            out[f"{side}_{part}"] = template.format(s=s, S=side.capitalize())
    return out


MOCAP_NAMES: dict[str, dict[str, str]] = {
    # Li et al. 2018 exp-map skeleton (skeleton.json): names are joint positions.
    "expmap": _cmu(
        {"hip": "{s}hip", "knee": "{s}knee", "ankle": "{s}ankle", "foot": "{s}toe_end",
         "shoulder": "{s}shoulder", "elbow": "{s}elbow", "wrist": "{s}wrist"},
        {"spine": "thorax", "head": "upperneck_end"}),
    # CMU ASF/AMC: bone names, position = bone end.
    "asf": _cmu(
        {"hip": "{s}hipjoint", "knee": "{s}femur", "ankle": "{s}tibia", "foot": "{s}toes",
         "shoulder": "{s}clavicle", "elbow": "{s}humerus", "wrist": "{s}radius"},
        {"spine": "upperback", "head": "upperneck"}),
    # CMU BVH as converted by most tools (fairmotion, 01_01.bvh): joint origins.
    "bvh_cmu": _cmu(
        {"hip": "{S}UpLeg", "knee": "{S}Leg", "ankle": "{S}Foot", "foot": "{S}ToeBase_end",
         "shoulder": "{S}Arm", "elbow": "{S}ForeArm", "wrist": "{S}Hand"},
        {"spine": "Spine1", "head": "Head"}),
    # CMU BVH, alternative naming (131_*.bvh).
    "bvh_cmu_alt": _cmu(
        {"hip": "{S}Hip", "knee": "{S}Knee", "ankle": "{S}Ankle", "foot": "{S}Toe_end",
         "shoulder": "{S}Shoulder", "elbow": "{S}Elbow", "wrist": "{S}Wrist"},
        {"spine": "Chest2", "head": "Head"}),
    # Daz template used by the CMU dance conversions.
    "bvh_daz": _cmu(
        {"hip": "{s}Thigh", "knee": "{s}Shin", "ankle": "{s}Foot", "foot": "{s}Foot_end",
         "shoulder": "{s}Shldr", "elbow": "{s}ForeArm", "wrist": "{s}Hand"},
        {"spine": "chest", "head": "head"}),
}  # fmt: skip
# Key joints that tell the BVH conventions apart (checked in this order).
_CONVENTION_KEYS = {
    "bvh_cmu": "LeftUpLeg",
    "bvh_cmu_alt": "LeftHip",
    "bvh_daz": "lThigh",
    "expmap": "lhip",
    "asf": "lfemur",
}


def mocap_convention(names: Iterable[str]) -> str:
    """Name the convention of a mocap skeleton from its joint names; ValueError if none matches."""
    present = set(names)
    for conv, key in _CONVENTION_KEYS.items():
        table = MOCAP_NAMES[conv]
        if key in present and all(src in present for j, src in table.items() if j not in DERIVED):
            return conv
    raise ValueError(f"unknown mocap skeleton: none of {sorted(MOCAP_NAMES)} matches joints {sorted(present)[:12]}…")


def mocap_indices(names: Sequence[str], convention: str | None = None) -> list[int]:
    """Index into ``names`` for each non-derived joint, in JOINT_NAMES order (derived joints: -1)."""
    conv = convention or mocap_convention(names)
    table = MOCAP_NAMES[conv]
    pos = {n: i for i, n in enumerate(names)}
    return [-1 if j in DERIVED else pos[table[j]] for j in JOINT_NAMES]


def from_mocap(positions: torch.Tensor, names: Sequence[str], convention: str | None = None) -> torch.Tensor:
    """Map mocap joint positions [..., M, 3] (named by ``names``) to the joint set [..., NUM_JOINTS, 3]."""
    idx = torch.tensor(mocap_indices(names, convention), device=positions.device)
    out = positions[..., idx.clamp(min=0), :].clone()
    return fill_derived(out)


def fill_derived(joints: torch.Tensor) -> torch.Tensor:
    """Set the DERIVED joints of [..., NUM_JOINTS, C] to the midpoints of their sources (in place)."""
    for name, (a, b) in DERIVED.items():
        joints[..., JOINT_INDEX[name], :] = 0.5 * (joints[..., JOINT_INDEX[a], :] + joints[..., JOINT_INDEX[b], :])
    return joints
