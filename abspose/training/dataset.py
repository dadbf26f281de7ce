"""The whole shared mocap set as abspose18 poses, split by clip into train and validation, cached.

Sources under ``<data>/mocap`` (see the data README): the Li et al. exp-map archive (its own train/ and
test/ clips), the CMU Daz dance BVH archive, CMU 01_01 / 11_01 ASF/AMC and CMU 131_* BVH. Every clip is
mapped to the joint set (:func:`abspose.skeleton.from_mocap`), resampled to ``FPS`` (consecutive mocap
frames are near duplicates), and moved so its floor (lowest foot point over the clip) is at height 0.

Frame of the poses: the mocap world frame, metres, **Y up**, floor at y = 0.

Split: whole clips only, never frames of one clip on both sides. Exp-map clips follow the archive's
train/test folders; of the Daz clips every ``DAZ_VAL_EVERY``-th (by sorted name) is held out; the single
CMU clips are training data. The result is cached as one ``.npz`` in ``$ABSPOSE_CACHE`` keyed by the
sizes and times of the source files, so a second load takes well under a second.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from abspose import skeleton as sk
from abspose.models.blazepose_weights import cache_dir
from abspose.training.mocap import Motion, load_asf_amc, load_bvh, load_expmap

FPS = 30.0
DAZ_VAL_EVERY = 5
CACHE_VERSION = 1

EXPMAP = Path("cmu_li2018_expmap")
DAZ = Path("cmu_daz_dance_bvh")
FAIRMOTION = Path("cmu_asf_amc_bvh", "fairmotion")
BVH11 = Path("cmu_asf_amc_bvh", "bvh11")
# salsa clips say 120 Hz in their headers but are 60 Hz (data README)
DAZ_TRUE_FPS = {"salsa": 60.0}


@dataclass
class MocapSet:
    """Poses [N, NUM_JOINTS, 3] float32 (metres, Y up, floor y = 0), the clip index of each pose, clip names
    and the split of each clip ("train" or "val")."""

    poses: np.ndarray
    clip: np.ndarray
    clip_names: list[str]
    clip_split: list[str]

    def split(self, name: str) -> torch.Tensor:
        """Poses of one split as a float32 tensor [n, NUM_JOINTS, 3]."""
        keep = np.array([s == name for s in self.clip_split])[self.clip]
        return torch.from_numpy(self.poses[keep])


def _resample(motion: Motion, fps: float | None = None) -> np.ndarray:
    src = fps or motion.fps
    step = max(1, round(src / FPS))
    joints = sk.from_mocap(torch.from_numpy(motion.positions[::step]), motion.names).numpy()
    foot = joints[:, [sk.JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")], 1]
    joints[..., 1] -= np.percentile(foot.min(axis=1), 1)  # floor = lowest foot point (robust to glitches)
    return joints.astype(np.float32)


def _sources(root: Path) -> list[Path]:
    files = [
        root / EXPMAP / "cmu_mocap_expmap_raw.tar.xz",
        root / EXPMAP / "skeleton.json",
        root / DAZ / "train_data_bvh_raw.tar.xz",
        root / FAIRMOTION / "01.asf",
        root / FAIRMOTION / "01_01.amc",
        root / FAIRMOTION / "11.asf",
        root / FAIRMOTION / "11_01.amc",
    ]
    files += sorted((root / BVH11).glob("131_*.bvh"))
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"mocap data missing: {', '.join(missing)}")
    return files


def _load_all(root: Path) -> dict[str, tuple[str, np.ndarray]]:
    clips: dict[str, tuple[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(root / EXPMAP / "cmu_mocap_expmap_raw.tar.xz") as tar:
            tar.extractall(tmp, filter="data")
        for txt in sorted(Path(tmp).rglob("*.txt")):
            if txt.parent.parent.name in ("train", "test"):
                split = "train" if txt.parent.parent.name == "train" else "val"
                clips[f"expmap/{txt.parent.parent.name}/{txt.stem}"] = (
                    split,
                    _resample(load_expmap(txt, root / EXPMAP / "skeleton.json")),
                )
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(root / DAZ / "train_data_bvh_raw.tar.xz") as tar:
            tar.extractall(tmp, filter="data")
        daz = sorted(p for p in Path(tmp).rglob("*.bvh") if p.name != "standard.bvh")
        for i, bvh in enumerate(daz):
            style = bvh.parent.name
            split = "val" if i % DAZ_VAL_EVERY == DAZ_VAL_EVERY - 1 else "train"
            clips[f"daz/{style}/{bvh.stem}"] = (split, _resample(load_bvh(bvh), DAZ_TRUE_FPS.get(style)))
    for subject, trial in (("01", "01_01"), ("11", "11_01")):
        motion = load_asf_amc(root / FAIRMOTION / f"{subject}.asf", root / FAIRMOTION / f"{trial}.amc")
        clips[f"asf/{trial}"] = ("train", _resample(motion))
    for bvh in sorted((root / BVH11).glob("131_*.bvh")):
        clips[f"bvh/{bvh.stem}"] = ("train", _resample(load_bvh(bvh)))
    return clips


def _cache_key(files: list[Path]) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION} fps{FPS} val{DAZ_VAL_EVERY}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def load_mocap_set(data_root: str | Path, use_cache: bool = True) -> MocapSet:
    """Every shared mocap clip as abspose18 poses (``data_root`` = the ``data`` folder holding ``mocap/``)."""
    root = Path(data_root) / "mocap"
    files = _sources(root)
    path = cache_dir() / f"mocap_set_{_cache_key(files)}.npz"
    if use_cache and path.exists():
        with np.load(path) as z:
            return MocapSet(z["poses"], z["clip"], list(z["clip_names"]), list(z["clip_split"]))
    clips = _load_all(root)
    names = list(clips)
    poses = np.concatenate([clips[n][1] for n in names])
    clip = np.concatenate([np.full(len(clips[n][1]), i, dtype=np.int32) for i, n in enumerate(names)])
    result = MocapSet(poses, clip, names, [clips[n][0] for n in names])
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, poses=poses, clip=clip, clip_names=np.array(names), clip_split=np.array(result.clip_split))
        tmp.replace(path)
    return result
