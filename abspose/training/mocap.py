"""Mocap loaders: BVH (any channel order), CMU ASF/AMC and the 38-joint exp-map text format -> positions.

Every loader returns a :class:`Motion`: joint positions [T, J, 3] in **metres**, in the file's own world
frame (CMU and these BVH files: Y up, floor near y = 0), joint names in the file's naming (ASF: bone names,
the position being the bone's *end*; BVH: joint names plus ``<joint>_end`` for End Sites), parents, fps.
:func:`abspose.skeleton.from_mocap` maps them to the package's joint set. Forward kinematics is vectorized
over frames (one pass over the skeleton tree per clip).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

CMU_UNIT = 0.0254 / 0.45  # metres per CMU ASF length unit
# candidate BVH units (metres per unit), told apart by leg length
UNITS = {"m": 1.0, "cm": 0.01, "inch": 0.0254, "cmu": CMU_UNIT}


class MocapError(ValueError):
    """A mocap file that cannot be read; the message names the file and what is wrong."""


@dataclass
class Motion:
    """A clip: positions [T, J, 3] metres (file's world frame), names [J], parents [J] (-1 root), fps."""

    positions: np.ndarray
    names: list[str]
    parents: list[int]
    fps: float

    def __len__(self) -> int:
        return int(self.positions.shape[0])


def _matrices(angles_deg: np.ndarray, seq: str) -> np.ndarray:
    """[T, k] Euler angles (degrees) -> [T, 3, 3]; seq as scipy (upper case = intrinsic)."""
    if not seq:
        return np.broadcast_to(np.eye(3), (angles_deg.shape[0], 3, 3))
    return Rotation.from_euler(seq, angles_deg, degrees=True).as_matrix()


# --- BVH ---------------------------------------------------------------------------------------------
def load_bvh(path: str | Path, units: str = "auto") -> Motion:
    """A BVH file. ``units``: one of UNITS or "auto" (the unit that makes the legs 0.6–1.2 m long)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MocapError(f"{path}: cannot read ({exc})") from exc
    head, sep, motion = text.partition("MOTION")
    if not sep:
        raise MocapError(f"{path}: no MOTION section")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    tokens = head.split()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT") or (tok == "End" and tokens[i + 1] == "Site"):
            name = tokens[i + 1] if tok != "End" else names[stack[-1]] + "_end"
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            channels.append([])
            offsets.append(np.zeros(3))
            i += 2
        elif tok == "{":
            stack.append(len(names) - 1)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            offsets[-1] = np.array([float(v) for v in tokens[i + 1 : i + 4]])
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            channels[-1] = tokens[i + 2 : i + 2 + n]
            i += 2 + n
        else:
            i += 1
    lines = motion.strip().splitlines()
    try:
        n_frames = int(re.search(r"Frames:\s*(\d+)", lines[0]).group(1))  # type: ignore[union-attr]
        frame_time = float(re.search(r"Frame Time:\s*([\d.eE+-]+)", lines[1]).group(1))  # type: ignore[union-attr]
        data = np.array([[float(v) for v in line.split()] for line in lines[2 : 2 + n_frames]])
    except (AttributeError, IndexError, ValueError) as exc:
        raise MocapError(f"{path}: malformed MOTION header or values ({exc})") from exc
    n_channels = sum(len(c) for c in channels)
    if data.ndim != 2 or data.shape != (n_frames, n_channels):
        raise MocapError(f"{path}: expected {n_frames} frames of {n_channels} values, got {data.shape}")
    pos = _bvh_fk(data, offsets, parents, channels)
    scale = UNITS[units] if units != "auto" else _guess_unit(pos[0])
    return Motion(pos * scale, names, parents, 1.0 / frame_time)


def _bvh_fk(data: np.ndarray, offsets: list[np.ndarray], parents: list[int], channels: list[list[str]]) -> np.ndarray:
    t = data.shape[0]
    pos = np.zeros((t, len(parents), 3))
    rot = np.zeros((t, len(parents), 3, 3))
    col = 0
    for j, (parent, chans) in enumerate(zip(parents, channels, strict=True)):
        values = data[:, col : col + len(chans)]
        col += len(chans)
        trans = np.zeros((t, 3))
        seq, angles = "", []
        for k, c in enumerate(chans):
            axis = c[0].upper()
            if c.lower().endswith("position"):
                trans[:, "XYZ".index(axis)] = values[:, k]
            else:
                seq += axis
                angles.append(values[:, k])
        local = _matrices(np.stack(angles, axis=1) if angles else np.zeros((t, 0)), seq)
        if parent < 0:
            pos[:, j] = offsets[j] + trans
            rot[:, j] = local
        else:
            pos[:, j] = pos[:, parent] + np.einsum("tij,j->ti", rot[:, parent], offsets[j]) + trans
            rot[:, j] = rot[:, parent] @ local
    return pos


def _guess_unit(frame: np.ndarray) -> float:
    """Metres per unit: the one making the root's height above the lowest joint (a leg) 0.6–1.2 m."""
    root_height = frame[0, 1]
    reach = root_height - frame[:, 1].min()
    for unit in UNITS.values():
        if 0.6 <= reach * unit <= 1.2:
            return unit
    raise MocapError(f"cannot tell the units: the root is {reach:.3g} units above the lowest joint")


# --- ASF/AMC -----------------------------------------------------------------------------------------
@dataclass
class _Bone:
    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray  # degrees
    axis_order: str
    dof: list[str]


def _parse_asf(path: Path) -> tuple[dict[str, _Bone], dict[str, list[str]], dict, float]:
    text = path.read_text()
    sections = {m.group(1): m.start() for m in re.finditer(r"^:(\w+)", text, flags=re.M)}
    if "bonedata" not in sections or "hierarchy" not in sections:
        raise MocapError(f"{path}: not an ASF file (no :bonedata / :hierarchy)")
    length_unit = float(re.search(r"length\s+([\d.]+)", text).group(1)) if ":units" in text else 1.0  # type: ignore[union-attr]
    bones: dict[str, _Bone] = {}
    bonedata = text[sections["bonedata"] : sections["hierarchy"]]
    for block in re.findall(r"^\s*begin\s*$(.*?)^\s*end\s*$", bonedata, flags=re.S | re.M):
        fields: dict[str, list[str]] = {}
        for line in block.strip().splitlines():
            parts = line.split()
            if parts and parts[0] in ("name", "direction", "length", "axis", "dof"):
                fields[parts[0]] = parts[1:]
        name = fields["name"][0]
        axis = fields.get("axis", ["0", "0", "0", "XYZ"])
        bones[name] = _Bone(
            name=name,
            direction=np.array([float(v) for v in fields["direction"]]),
            length=float(fields["length"][0]),
            axis=np.array([float(v) for v in axis[:3]]),
            axis_order=axis[3].upper(),
            dof=fields.get("dof", []),
        )
    hierarchy: dict[str, list[str]] = {}
    hier_text = text[sections["hierarchy"] :].split("begin", 1)[1].split("end", 1)[0]
    for line in hier_text.strip().splitlines():
        parts = line.split()
        if parts:
            hierarchy[parts[0]] = parts[1:]
    root_block = text[sections["root"] : sections["bonedata"]] if "root" in sections else ""
    root = {}
    for key in ("order", "axis", "position", "orientation"):
        m = re.search(rf"{key}\s+(.+)", root_block)
        root[key] = m.group(1).split() if m else []
    return bones, hierarchy, root, length_unit


def load_asf_amc(asf: str | Path, amc: str | Path, fps: float = 120.0) -> Motion:
    """A CMU skeleton (ASF) and motion (AMC). Positions are bone ends, named by bone; the root is 'root'."""
    asf, amc = Path(asf), Path(amc)
    try:
        bones, hierarchy, root, length_unit = _parse_asf(asf)
    except (OSError, KeyError, IndexError, ValueError, AttributeError) as exc:
        raise MocapError(f"{asf}: cannot parse ASF ({exc})") from exc
    try:
        frames = _parse_amc(amc)
    except (OSError, ValueError) as exc:
        raise MocapError(f"{amc}: cannot parse AMC ({exc})") from exc
    if not frames:
        raise MocapError(f"{amc}: no frames")
    names = ["root"]
    parents = [-1]
    order = ["root"]
    while order:  # breadth-first over the hierarchy
        parent = order.pop(0)
        for child in hierarchy.get(parent, []):
            if child not in bones:
                raise MocapError(f"{asf}: hierarchy names unknown bone '{child}'")
            names.append(child)
            parents.append(names.index(parent))
            order.append(child)
    t = len(frames)
    unit = CMU_UNIT * 0.45 / length_unit  # ASF 'length L' means one unit = 1/L inch
    pos = np.zeros((t, len(names), 3))
    rot = np.zeros((t, len(names), 3, 3))
    root_values = np.array([f.get("root", [0.0] * 6) for f in frames])
    root_order = [c.upper() for c in root.get("order", ["TX", "TY", "TZ", "RX", "RY", "RZ"])]
    trans = np.stack([root_values[:, root_order.index(f"T{a}")] for a in "XYZ"], axis=1)
    root_rot_cols = [k for k, c in enumerate(root_order) if c.startswith("R")]
    root_axis = "".join(root_order[k][1] for k in root_rot_cols).lower()
    pos[:, 0] = trans + np.array([float(v) for v in root.get("position", [0, 0, 0])])
    rot[:, 0] = _matrices(root_values[:, root_rot_cols], root_axis)
    for j in range(1, len(names)):
        bone = bones[names[j]]
        c = Rotation.from_euler(bone.axis_order.lower(), bone.axis, degrees=True).as_matrix()
        values = np.array([f.get(bone.name, [0.0] * len(bone.dof)) for f in frames])
        angles = np.zeros((t, 3))
        for k, d in enumerate(bone.dof):
            if d.lower().startswith("r"):
                angles[:, "xyz".index(d[1].lower())] = values[:, k]
        motion = _matrices(angles, "xyz")  # static X, then Y, then Z
        local = c @ motion @ c.T
        p = parents[j]
        rot[:, j] = rot[:, p] @ local
        pos[:, j] = pos[:, p] + bone.length * np.einsum("tij,j->ti", rot[:, j], bone.direction)
    return Motion(pos * unit, names, parents, fps)


def _parse_amc(path: Path) -> list[dict[str, list[float]]]:
    frames: list[dict[str, list[float]]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ":")):
            continue
        if line.isdigit():
            frames.append({})
            continue
        if not frames:
            raise ValueError(f"values before the first frame number: {line[:40]!r}")
        name, *values = line.split()
        frames[-1][name] = [float(v) for v in values]
    return frames


# --- exp-map text (Li et al. 2018 CMU subset) ---------------------------------------------------------
def load_expmap(path: str | Path, skeleton_json: str | Path) -> Motion:
    """One exp-map clip: rows of root translation (CMU units) + 38 × 3 exponential maps, FK by skeleton.json."""
    path = Path(path)
    spec = json.loads(Path(skeleton_json).read_text())
    names, parents = spec["joint_names"], spec["parents"]
    offsets = np.array(spec["bone_offsets_cmu_units"], dtype=np.float64)
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise MocapError(f"{path}: cannot parse exp-map rows ({exc})") from exc
    if data.shape[1] != 3 + 3 * len(names):
        raise MocapError(f"{path}: rows have {data.shape[1]} values, expected {3 + 3 * len(names)}")
    t = data.shape[0]
    local = Rotation.from_rotvec(data[:, 3:].reshape(-1, 3)).as_matrix().reshape(t, len(names), 3, 3)
    pos = np.zeros((t, len(names), 3))
    rot = np.zeros((t, len(names), 3, 3))
    for j, p in enumerate(parents):  # row-vector convention: x_world = offset @ R_parent + parent
        if p < 0:
            pos[:, j] = offsets[j] + data[:, :3]
            rot[:, j] = local[:, j]
        else:
            pos[:, j] = np.einsum("i,tij->tj", offsets[j], rot[:, p]) + pos[:, p]
            rot[:, j] = local[:, j] @ rot[:, p]
    return Motion(pos * float(spec.get("units_to_metres", CMU_UNIT)), list(names), list(parents), float(spec["fps"]))
