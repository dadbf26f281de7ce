"""Lifter evaluation like the papers' tables (``abspose eval-lifter``).

Held-out mocap clips (the validation split of :mod:`abspose.training.dataset`) through random robot cameras with
the default detector-noise mixture, seeded, so every row is scored on the same samples. Metrics in mm:
MPJPE (root-aligned; "in view": over the joints inside the image only, as in the papers, whose subjects
are always in view), PA-MPJPE (Procrustes), MRPE and its |X|, |Y|, |Z| parts, A-MPJPE (no alignment),
3DPCK@150 mm absolute (%), by the true root's distance band, and (``frame=True``) for the people fully in
the image — the papers' setting: Human3.6M's subjects are always in view — apart from the people the image
border cuts.

Depth mode (:func:`depth_inputs`, :func:`depth_predictions`): the same people in rendered RGB-D scenes
(:mod:`abspose.training.scenes`) through the node's own depth path: 16UC1 image -> :func:`depth.read_registered`
-> :func:`fuse.lift_with_depth`, against the monocular lifter, the anchors' one-pixel readout and variants
of the fusion.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from abspose import skeleton as sk
from abspose.depth import DepthConfig, Readout, depth_pixels, read_registered
from abspose.fuse import FuseConfig, fuse, lift_with_depth, relative_error
from abspose.ground import ContactConfig, contact_many, place_on_ground
from abspose.lifter import Lifter, lift
from abspose.training.baseline import closed_form_translation
from abspose.training.metrics import a_mpjpe, mpjpe, mrpe, pa_mpjpe, pck_abs
from abspose.training.noise2d import NoiseModel
from abspose.training.postures import KINDS, make
from abspose.training.render import SensorModel
from abspose.training.scenes import Scenes, scene_depth
from abspose.training.synth import BONE_JITTER, IN, Batch, CameraRange, inside_image, project
from abspose.training.train import sample_batch

Bands = tuple[tuple[str, float, float], ...]
BANDS: Bands = (("all", 0.0, 1e9), ("< 3 m", 0.0, 3.0), ("3–6 m", 3.0, 6.0), ("> 6 m", 6.0, 1e9))
FRAME_GROUPS = ("people fully in the image", "people cut by the image border")
# the MRPE target is for people nearer than 6 m; the papers score people fully in view
TARGET_GROUPS = ("< 6 m", "people fully in the image, < 6 m")
CONTACT_GROUPS = ("< 6 m, feet on the floor", "< 6 m, feet off the floor")
ACTIVITY_GROUPS = (
    "activity: standing / walking",
    "activity: sitting / crouching (pelvis low)",
    "activity: bending (trunk inclined)",
    "activity: athletic (feet off the floor)",
)
DEPTH_BANDS: Bands = (
    ("all", 0.0, 1e9),
    ("< 3 m", 0.0, 3.0),
    ("3–5 m", 3.0, 5.0),
    ("5–8 m", 5.0, 8.0),
    ("> 8 m", 8.0, 1e9),
    ("< 5 m", 0.0, 5.0),
)
NODE_ROW = "accepted readouts as depth features + fusion (the node)"
RADII_ROW = "the node with constant body radii as offsets (depth.surface_model off: the default until 2026-11-21)"
RELATIVE_ROW = "the node with depth.refine_relative (pelvis refinement against its relative error only)"
COLUMNS = ("MPJPE", "PA-MPJPE", "MRPE", "MRPE X", "MRPE Y", "MRPE Z", "A-MPJPE", "3DPCK@150 (%)")
# the monocular table adds MPJPE over the joints inside the image (detected or not; the cut-off ones left out)
LIFTER_COLUMNS = ("MPJPE", "MPJPE in view", *COLUMNS[1:])
# the reported per-joint uncertainty (expected 3D error) against the actual absolute error (A-MPJPE's)
UNCERTAINTY_COLUMNS = ("mean σ", "error ≤ 2σ (%)")


@dataclass
class Prediction:
    joints: torch.Tensor  # [B, 18, 3] m
    root: torch.Tensor  # [B, 3] m
    uncertainty: torch.Tensor | None = None  # [B, 18] m, the expected 3D error of each joint


Predictor = Callable[[Batch], Prediction]


def lifter_predictor(model: Lifter, use_depth: bool = False, chunk: int = 8192) -> Predictor:
    @torch.no_grad()
    def run(batch: Batch) -> Prediction:
        model.eval()
        outs = []
        for i in range(0, len(batch), chunk):
            part = slice(i, i + chunk)
            depth = batch.depth[part] if use_depth else None
            outs.append(model(batch.keypoints[part], batch.mask[part], batch.K[part], depth))
        return Prediction(torch.cat([o.joints for o in outs]), torch.cat([o.root for o in outs]))

    return run


def baseline_predictor(model: Lifter) -> Predictor:
    """The lifter's root-relative pose placed by the closed-form (Mehta) translation."""
    lifted = lifter_predictor(model)

    def run(batch: Batch) -> Prediction:
        pred = lifted(batch)
        rel = pred.joints - pred.root[:, None]
        root = closed_form_translation(rel[:, list(sk.INPUT_INDEX)], batch.keypoints, batch.mask, batch.K)
        return Prediction(rel + root[:, None], root)

    return run


def floor_planes(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's floor in its camera frame: up [B, 3] (unit) and the camera's height [B] m."""
    down = torch.tensor([0.0, -1.0, 0.0], device=batch.rotation.device)  # the ground frame's up, flipped
    return batch.rotation @ down, -batch.shift[:, 1]


def on_floor(batch: Batch, cfg: ContactConfig | None = None, tolerance: float = 0.05) -> torch.Tensor:
    """[B] bool: the person's lowest foot joint (less its contact height) is at most ``tolerance`` m above
    the floor: the people the ground plane can place (a foot the mocap puts into the floor counts as on it)."""
    cfg = cfg or ContactConfig()
    up, height = floor_planes(batch)
    feet = [sk.JOINT_INDEX[j] for j in cfg.joints]
    above = (batch.joints[:, feet] * up[:, None]).sum(-1) + height[:, None]
    return (above - torch.tensor(cfg.joint_height, device=above.device)).amin(1) <= tolerance


def activities(batch: Batch, cfg: ContactConfig | None = None) -> dict[str, torch.Tensor]:
    """ACTIVITY_GROUPS -> [B] bool, from the true pose over its floor: feet off it (> 5 cm: jumps, flips);
    pelvis below 0.7 of the leg's length (hip-knee-ankle) above the floor (sitting, squatting, kneeling);
    trunk (pelvis -> neck) more than 40° from the vertical (bending over, picking up); the rest."""
    up, height = floor_planes(batch)
    j = batch.joints
    above = (j * up[:, None]).sum(-1) + height[:, None]
    leg = (
        sum(
            (j[:, sk.JOINT_INDEX[f"{side}_{a}"]] - j[:, sk.JOINT_INDEX[f"{side}_{b}"]]).norm(dim=-1)
            for side in ("left", "right")
            for a, b in (("hip", "knee"), ("knee", "ankle"))
        )
        / 2
    )
    trunk = torch.nn.functional.normalize(j[:, sk.JOINT_INDEX["neck"]] - j[:, sk.PELVIS], dim=-1)
    inclined = (trunk * up).sum(-1) < math.cos(math.radians(40))
    off = ~on_floor(batch, cfg)
    low = ~off & (above[:, sk.PELVIS] < 0.7 * leg)
    bending = ~off & ~low & inclined
    return dict(zip(ACTIVITY_GROUPS, (~off & ~low & ~inclined, low, bending, off), strict=True))


def ground_predictor(model: Lifter, cfg: ContactConfig | None = None) -> Predictor:
    """The monocular lifter with each sample's true floor (the node's ``ground_frame``): feet on it place
    the person (:func:`abspose.ground.place_on_ground`)."""

    @torch.no_grad()
    def run(batch: Batch) -> Prediction:
        K = batch.K
        kp = torch.zeros(len(batch), sk.NUM_JOINTS, 2, device=K.device)
        conf = torch.zeros(len(batch), sk.NUM_JOINTS, device=K.device)
        idx = torch.tensor(sk.INPUT_INDEX, device=K.device)
        kp[:, idx], conf[:, idx] = batch.keypoints, batch.mask.float()
        lifted = lift(model, kp, conf, K)
        fused = fuse(lifted.joints, lifted.uncertainty, kp, K, None)
        up, height = floor_planes(batch)
        found = contact_many(fused.joints, relative_error(fused), kp, conf > 0, K, up, height, batch.image_size, cfg)
        placed = place_on_ground(fused, found, cfg)
        return Prediction(placed.joints, placed.root, placed.uncertainty)

    return run


POSTURE_GROUP = "made posture: {} (from held-out clips)"


def posture_sets(
    poses: torch.Tensor, n: int, seed: int, noise: NoiseModel, jitter: float | torch.Tensor | None = BONE_JITTER
) -> dict[str, Batch]:
    """Per posture kind (:data:`abspose.training.postures.KINDS`), ``n`` samples of postures made from the
    held-out ``poses`` (legs, trunk, arms and head of held-out clips), through the same random cameras and
    with the same bone-length ``jitter`` as the real samples: scored apart from the real poses, so a gain on
    made poses is not read as one on real people."""
    g = torch.Generator(device=poses.device).manual_seed(seed)
    sets = {}
    for kind in KINDS:
        lower, upper = (poses[torch.randint(len(poses), (4 * n,), generator=g, device=poses.device)] for _ in "lu")
        sets[kind] = sample_batch(make(kind, lower, upper, g), n, noise, CameraRange(), None, g, jitter=jitter)
    return sets


def score_postures(predict: Predictor, sets: dict[str, Batch]) -> dict[str, dict[str, float]]:
    """:func:`score` of a predictor on each :func:`posture_sets` kind, one group (all distances) per kind."""
    out: dict[str, dict[str, float]] = {}
    for kind, batch in sets.items():
        out |= score(predict(batch), batch, bands=((POSTURE_GROUP.format(kind), 0.0, 1e9),))
    return out


def in_view(batch: Batch) -> torch.Tensor:
    """[B, 18] bool: the joint's true position projects inside the image (whether the detector found it or
    not): the joints a camera can see, the only ones the papers score."""
    return inside_image(project(batch.joints, batch.K), batch.image_size)


def in_frame(batch: Batch) -> torch.Tensor:
    """[B] bool: every input joint is :func:`in_view` (the person is fully in the image)."""
    return in_view(batch)[:, IN.to(batch.joints.device)].all(-1)


def score(
    pred: Prediction, batch: Batch, bands: Bands = BANDS, frame: bool = False, contact: bool = False
) -> dict[str, dict[str, float]]:
    """Per band, the COLUMNS (mm, or % for PCK) averaged over the samples in it; with ``frame``, also per
    FRAME_GROUPS (all distances) and per TARGET_GROUPS (everyone, and people fully in view, below 6 m);
    with ``contact``, CONTACT_GROUPS (below 6 m, feet on the floor or not) and the ACTIVITY_GROUPS (all
    distances)."""
    gt_root = batch.joints[:, sk.PELVIS]
    view = in_view(batch)
    per = {
        "MPJPE": mpjpe(pred.joints, batch.joints),
        "MPJPE in view": mpjpe(pred.joints, batch.joints, view),
        "PA-MPJPE": pa_mpjpe(pred.joints, batch.joints),
        "MRPE": mrpe(pred.root, gt_root),
        "MRPE X": (pred.root[:, 0] - gt_root[:, 0]).abs(),
        "MRPE Y": (pred.root[:, 1] - gt_root[:, 1]).abs(),
        "MRPE Z": (pred.root[:, 2] - gt_root[:, 2]).abs(),
        "A-MPJPE": a_mpjpe(pred.joints, batch.joints),
        "3DPCK@150 (%)": pck_abs(pred.joints, batch.joints) / 10,
    }
    if pred.uncertainty is not None:
        err, sigma = (pred.joints - batch.joints).norm(dim=-1), pred.uncertainty
        ok = torch.isfinite(err) & torch.isfinite(sigma)
        per["mean σ"] = torch.where(ok, sigma, torch.nan).nanmean(1)
        per["error ≤ 2σ (%)"] = torch.where(ok, (err <= 2 * sigma).float(), torch.nan).nanmean(1) / 10
    dist = gt_root.norm(dim=-1)
    groups = {band: (dist >= lo) & (dist < hi) for band, lo, hi in bands}
    if frame:
        whole = view[:, IN.to(view.device)].all(-1)  # in_frame without projecting again
        near = dist < 6.0
        groups |= {
            FRAME_GROUPS[0]: whole,
            FRAME_GROUPS[1]: ~whole,
            TARGET_GROUPS[0]: near,
            TARGET_GROUPS[1]: whole & near,
        }
    if contact:
        floor, near = on_floor(batch), dist < 6.0
        groups |= {CONTACT_GROUPS[0]: near & floor, CONTACT_GROUPS[1]: near & ~floor} | activities(batch)
    return {
        band: {k: 1000 * v[sel].nanmean().item() for k, v in per.items()} | {"n": int(sel.sum())}
        for band, sel in groups.items()
    }


STATURE_BINS = ((0.0, 1.55), (1.55, 1.62), (1.62, 1.66), (1.66, 1.71), (1.71, 1.76), (1.76, 1.85), (1.85, 9.0))


def depth_bias_by_stature(preds: dict[str, Prediction], batch: Batch, mean: float) -> str:
    """Markdown: per stature band (m), the median of predicted / true root depth (Z) − 1 in %, per model;
    a row for the people within 2.5 cm of the population ``mean`` stature and one for everyone (bodies of
    unknown stature, NaN, count there only)."""
    ratio = {name: p.root[:, 2] / batch.joints[:, sk.PELVIS, 2] for name, p in preds.items()}
    rows = [
        (f"< {hi:.2f} m" if lo == 0 else f"≥ {lo:.2f} m" if hi > 5 else f"{lo:.2f}–{hi:.2f} m", lo, hi)
        for lo, hi in STATURE_BINS
    ]
    rows += [(f"population mean {mean:.3f} m ± 2.5 cm", mean - 0.025, mean + 0.025), ("everyone", 0.0, 9.0)]
    lines = ["| stature | n | " + " | ".join(preds) + " |", "|---|---:|" + "---:|" * len(preds)]
    for label, lo, hi in rows:
        sel = (batch.stature >= lo) & (batch.stature < hi)
        if label == "everyone":
            sel = torch.ones_like(sel)
        cells = (f"{100 * (r[sel].nanmedian().item() - 1):+.1f} %" if bool(sel.any()) else "–" for r in ratio.values())
        lines.append(f"| {label} | {int(sel.sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results: dict[str, dict[str, dict[str, float]]], columns: tuple[str, ...] = COLUMNS) -> str:
    """One table per band (in :func:`score`'s order), a row per model ("–" where a model has no such number)."""
    lines: list[str] = []
    first = next(iter(results.values()))
    for band in first:
        n = first[band]["n"]
        lines += [
            f"**{band}** ({n} samples; mm, PCK in %)",
            "",
            "| model | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for name, res in results.items():
            cells = (f"{res[band][c]:.1f}" if c in res.get(band, {}) else "–" for c in columns)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


@dataclass
class DepthInputs:
    """What the node has per scene: ideal keypoints [S, 18, 2] px and their usability [S, 18], the robust
    readout (:class:`~abspose.depth.Readout` [S, 18]) and the raw depth under the pelvis keypoint [S] (m)."""

    keypoints: torch.Tensor
    usable: torch.Tensor
    readout: Readout
    pixel: torch.Tensor


def depth_inputs(
    scenes: Scenes, seed: int, sensor: SensorModel | None = None, cfg: DepthConfig | None = None
) -> DepthInputs:
    """Render every scene and read its depth the way the node does (one scene, i.e. one image, at a time)."""
    t = scenes.targets
    s = len(t)
    idx = torch.tensor(sk.INPUT_INDEX)
    kp = torch.full((s, sk.NUM_JOINTS, 2), float("nan"))
    kp[:, idx] = torch.where(t.mask[..., None], t.keypoints, torch.full_like(t.keypoints, float("nan")))
    usable = torch.zeros(s, sk.NUM_JOINTS, dtype=torch.bool)
    usable[:, idx] = t.mask
    g = torch.Generator().manual_seed(seed)
    parts, pixel = [], torch.full((s,), float("nan"))
    for i in range(s):
        image, colour, dcam = scene_depth(scenes, i, sensor, g)
        parts.append(read_registered(kp[i : i + 1], usable[i : i + 1], colour, image, "16UC1", dcam, cfg))
        # the anchors' readout: one raw pixel under the pelvis keypoint
        uv = depth_pixels(kp[i : i + 1, sk.PELVIS], colour, dcam)[0].round()
        if torch.isfinite(uv).all() and 0 <= uv[0] < image.shape[1] and 0 <= uv[1] < image.shape[0]:
            raw = float(image[int(uv[1]), int(uv[0])])
            pixel[i] = raw / 1000 if raw > 0 else float("nan")  # 16UC1: mm, 0 = no reading
    cat = {
        k: torch.cat([getattr(r, k) for r in parts])
        for k in ("surface", "sigma", "valid", "patch", "torso_normal", "torso_sigma")
    }
    readout = Readout(**cat, quantile=parts[0].quantile if parts else (cfg or DepthConfig()).quantile)
    return DepthInputs(kp, usable, readout, pixel)


def depth_predictions(
    model: Lifter, batch: Batch, inputs: DepthInputs, cfg: FuseConfig | None = None
) -> dict[str, Prediction]:
    """The rows of the depth table: monocular, the anchors' one pixel, fusion only, ungated depth features,
    the node's gated depth features + fusion (``cfg``, default the node's defaults), and the node with one
    of its parts changed: no pelvis refinement, the constant radii instead of the surface model, no torso
    plane, the pelvis readout alone as the refinement's anchor, the relative refinement gain."""
    cfg = cfg or FuseConfig()
    conf = inputs.usable.float()
    ideal = inputs.keypoints.nan_to_num()
    K = batch.K
    mono = lift(model, ideal, conf, K)
    pelvis = inputs.keypoints[:, sk.PELVIS]
    xy = (pelvis - K[:, :2, 2]) / torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)
    pixel_root = torch.cat([xy, torch.ones_like(xy[:, :1])], -1) * inputs.pixel[:, None]
    pixel_root = torch.where(torch.isfinite(pixel_root).all(-1, keepdim=True), pixel_root, mono.root)
    ungated = lift(model, ideal, conf, K, inputs.readout.surface)
    ungated = fuse(ungated.joints, ungated.uncertainty, ideal, K, inputs.readout, cfg)

    def node(features: bool = True, **change) -> Prediction:
        x = lift_with_depth(model, ideal, conf, K, inputs.readout, features=features, cfg=replace(cfg, **change))
        return Prediction(x.joints, x.root, x.uncertainty)

    return {
        "monocular lifter": Prediction(mono.joints, mono.root, mono.uncertainty),
        "one depth pixel at the pelvis keypoint (anchors), else monocular": Prediction(
            mono.joints - mono.root[:, None] + pixel_root[:, None], pixel_root
        ),
        "robust readout + fusion, no depth features": node(features=False),
        "all readouts as depth features + fusion": Prediction(ungated.joints, ungated.root, ungated.uncertainty),
        NODE_ROW: node(),
        "the node without its pelvis refinement": node(refine=0.0),
        RADII_ROW: node(surface_model=False),
        "the node without the torso plane (depth.orient off)": node(orient=False),
        "the node refining towards the pelvis readout alone (not the hips')": node(anchors=("pelvis",)),
        RELATIVE_ROW: node(refine_relative=True),
    }
