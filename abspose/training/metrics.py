"""3D pose metrics of the papers, batched. Inputs [B, J, 3] in metres; outputs per sample [B] in metres."""

from __future__ import annotations

import torch

from abspose.skeleton import PELVIS


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean joint error after moving the roots (pelvis) together; with ``mask`` [B, J] over those joints only
    (NaN for a sample without any)."""
    err = ((pred - pred[:, PELVIS : PELVIS + 1]) - (gt - gt[:, PELVIS : PELVIS + 1])).norm(dim=-1)
    if mask is None:
        return err.mean(1)
    return torch.where(mask, err, torch.nan).nanmean(1)


def a_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean absolute joint error, no alignment (camera frame)."""
    return (pred - gt).norm(dim=-1).mean(1)


def mrpe(pred_root: torch.Tensor, gt_root: torch.Tensor) -> torch.Tensor:
    """Root position error [B] from roots [B, 3]."""
    return (pred_root - gt_root).norm(dim=-1)


def pck_abs(pred: torch.Tensor, gt: torch.Tensor, threshold: float = 0.15) -> torch.Tensor:
    """Fraction of joints within ``threshold`` metres, no alignment (3DPCK absolute)."""
    return ((pred - gt).norm(dim=-1) < threshold).float().mean(1)


def procrustes(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``pred`` aligned to ``gt`` by the best similarity transform (scale, rotation without reflection,
    translation), batched (Umeyama)."""
    mp, mg = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    p, g = pred - mp, gt - mg
    u, s, vh = torch.linalg.svd(p.transpose(1, 2) @ g)
    d = torch.sign(torch.linalg.det(u @ vh))
    fix = torch.ones_like(s)
    fix[:, -1] = d
    rot = u @ torch.diag_embed(fix) @ vh
    scale = (s * fix).sum(1) / (p**2).sum((1, 2)).clamp(min=1e-12)
    return scale[:, None, None] * p @ rot + mg


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean joint error after Procrustes alignment."""
    return (procrustes(pred, gt) - gt).norm(dim=-1).mean(1)
