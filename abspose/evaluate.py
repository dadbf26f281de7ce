"""Lifter evaluation like the papers' tables (``abspose eval-lifter``).

Held-out mocap clips (the validation split of :mod:`abspose.dataset`) through random robot cameras with
the default detector-noise mixture, seeded, so every row is scored on the same samples. Metrics in mm:
MPJPE (root-aligned), PA-MPJPE (Procrustes), MRPE and its |X|, |Y|, |Z| parts, A-MPJPE (no alignment),
3DPCK@150 mm absolute (%), by the true root's distance band.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import skeleton as sk
from .baseline import closed_form_translation
from .lifter import Lifter
from .metrics import a_mpjpe, mpjpe, mrpe, pa_mpjpe, pck_abs
from .synth import Batch

BANDS: tuple[tuple[str, float, float], ...] = (("all", 0.0, 1e9), ("< 3 m", 0.0, 3.0), ("3–6 m", 3.0, 6.0),
                                               ("> 6 m", 6.0, 1e9))  # fmt: skip
COLUMNS = ("MPJPE", "PA-MPJPE", "MRPE", "MRPE X", "MRPE Y", "MRPE Z", "A-MPJPE", "3DPCK@150 (%)")


@dataclass
class Prediction:
    joints: torch.Tensor  # [B, 18, 3] m
    root: torch.Tensor  # [B, 3] m


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


def score(pred: Prediction, batch: Batch) -> dict[str, dict[str, float]]:
    """Per band, the COLUMNS (mm, or % for PCK) averaged over the samples in it."""
    gt_root = batch.joints[:, sk.PELVIS]
    per = {
        "MPJPE": mpjpe(pred.joints, batch.joints), "PA-MPJPE": pa_mpjpe(pred.joints, batch.joints),
        "MRPE": mrpe(pred.root, gt_root), "MRPE X": (pred.root[:, 0] - gt_root[:, 0]).abs(),
        "MRPE Y": (pred.root[:, 1] - gt_root[:, 1]).abs(), "MRPE Z": (pred.root[:, 2] - gt_root[:, 2]).abs(),
        "A-MPJPE": a_mpjpe(pred.joints, batch.joints), "3DPCK@150 (%)": pck_abs(pred.joints, batch.joints) / 10,
    }  # fmt: skip
    dist = gt_root.norm(dim=-1)
    out: dict[str, dict[str, float]] = {}
    for band, lo, hi in BANDS:
        sel = (dist >= lo) & (dist < hi)
        out[band] = {k: 1000 * v[sel].nanmean().item() for k, v in per.items()} | {"n": int(sel.sum())}
    return out


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """One table per distance band, a row per model."""
    lines: list[str] = []
    for band, _, _ in BANDS:
        n = next(iter(results.values()))[band]["n"]
        lines += [f"**{band}** ({n} samples; mm, PCK in %)", "",
                  "| model | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]  # fmt: skip
        for name, res in results.items():
            lines.append(f"| {name} | " + " | ".join(f"{res[band][c]:.1f}" for c in COLUMNS) + " |")
        lines.append("")
    return "\n".join(lines)
