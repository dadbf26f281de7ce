"""2D detector error model: per joint, a Gaussian (weight γ) plus a uniform outlier square (PoseLifter).

Errors are measured in units of the person's 2D height ``h`` (pixels from the lowest to the highest true
keypoint), so one model serves people at 1 m and at 12 m; a floor of ``floor_px`` pixels is added in
quadrature (detectors never get much better than a pixel). For joint j an error e ∈ R² is drawn from

    γ_j · N(μ_j·h, (σ_j·h)² I)  +  (1 − γ_j) · Uniform(square of side box·h centred on the joint)

:func:`fit_em` fits (γ, μ, σ) by EM from pairs of detected and true 2D poses, initialised as in the paper
(one Gaussian, γ = 0.9). The default parameters (``NoiseModel.default()``) are set for BlazePose-class
detectors from published per-joint error levels (≈1–3 % of body height; extremities worst) and the
paper's outlier box (100 px for ~330 px people ≈ 0.3 h); refit them with :func:`fit_em` when pairs of
detections and ground truth are available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from abspose import skeleton as sk

# Default σ (fraction of person height) and inlier weight γ per *input* joint, by joint kind.
_DEFAULT_SIGMA = {
    "pelvis": 0.018,
    "hip": 0.022,
    "knee": 0.018,
    "ankle": 0.02,
    "foot": 0.026,
    "neck": 0.012,
    "head": 0.013,
    "shoulder": 0.014,
    "elbow": 0.02,
    "wrist": 0.026,
}
_DEFAULT_GAMMA = {
    "pelvis": 0.95,
    "hip": 0.94,
    "knee": 0.93,
    "ankle": 0.92,
    "foot": 0.9,
    "neck": 0.97,
    "head": 0.96,
    "shoulder": 0.96,
    "elbow": 0.92,
    "wrist": 0.88,
}


def _kind(name: str) -> str:
    return name.split("_")[-1]


@dataclass
class NoiseModel:
    """Per input joint (``skeleton.INPUT_JOINTS`` order): inlier weight γ, mean μ [J, 2] and σ [J] in units
    of person height; ``box`` = outlier square side (person heights); ``floor_px`` added in quadrature."""

    gamma: torch.Tensor
    sigma: torch.Tensor
    mu: torch.Tensor = field(default_factory=lambda: torch.zeros(len(sk.INPUT_JOINTS), 2))
    box: float = 0.3
    floor_px: float = 1.0

    @classmethod
    def default(cls) -> NoiseModel:
        names = sk.INPUT_JOINTS
        return cls(
            torch.tensor([_DEFAULT_GAMMA[_kind(n)] for n in names]),
            torch.tensor([_DEFAULT_SIGMA[_kind(n)] for n in names]),
        )

    @classmethod
    def clean(cls) -> NoiseModel:
        """No noise at all (the 'clean 2D training' ablation)."""
        j = len(sk.INPUT_JOINTS)
        return cls(torch.ones(j), torch.zeros(j), floor_px=0.0)

    def as_dict(self) -> dict[str, list]:
        return {
            "gamma": self.gamma.tolist(),
            "sigma": self.sigma.tolist(),
            "mu": self.mu.tolist(),
            "box": self.box,
            "floor_px": self.floor_px,
        }

    def sample(self, height_px: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Errors [B, J, 2] in pixels for people of 2D height ``height_px`` [B]."""
        b, j = height_px.shape[0], self.gamma.shape[0]
        dev = height_px.device
        h = height_px[:, None, None]
        sigma = torch.sqrt((self.sigma.to(dev)[None, :, None] * h) ** 2 + self.floor_px**2)
        gauss = self.mu.to(dev)[None] * h + sigma * torch.randn(b, j, 2, device=dev, generator=generator)
        uniform = (torch.rand(b, j, 2, device=dev, generator=generator) - 0.5) * self.box * h
        inlier = torch.rand(b, j, 1, device=dev, generator=generator) < self.gamma.to(dev)[None, :, None]
        return torch.where(inlier, gauss, uniform)


def fit_em(
    errors: torch.Tensor, box: float = 0.3, iterations: int = 100, valid: torch.Tensor | None = None
) -> NoiseModel:
    """Fit the per-joint mixture to errors [N, J, 2] (detected − true, in person heights) by EM.

    ``valid`` [N, J] marks the pairs to use (default: all finite). Returns a NoiseModel with ``floor_px`` 0
    (the fit already contains whatever floor the data has).
    """
    e = errors.double()
    ok = torch.isfinite(e).all(-1) if valid is None else valid & torch.isfinite(e).all(-1)
    w_ok = ok.double()
    e = torch.where(ok[..., None], e, torch.zeros_like(e))
    n = w_ok.sum(0).clamp(min=1)
    mu = (e * w_ok[..., None]).sum(0) / n[:, None]
    var = (((e - mu) ** 2).sum(-1) * w_ok).sum(0) / (2 * n)
    gamma = torch.full_like(n, 0.9)
    outlier_density = 1.0 / box**2
    for _ in range(iterations):
        d2 = ((e - mu) ** 2).sum(-1)
        g = torch.exp(-0.5 * d2 / var) / (2 * math.pi * var)
        r = gamma * g / (gamma * g + (1 - gamma) * outlier_density) * w_ok
        rs = r.sum(0).clamp(min=1e-9)
        gamma = (rs / n).clamp(1e-3, 1.0)
        mu = (r[..., None] * e).sum(0) / rs[:, None]
        var = (r * ((e - mu) ** 2).sum(-1)).sum(0) / (2 * rs)
        var = var.clamp(min=1e-12)
    return NoiseModel(gamma.float(), var.sqrt().float(), mu.float(), box=box, floor_px=0.0)
