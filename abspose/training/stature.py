"""The body-size prior of the training data: adult stature by sex (metres) and the breadths that differ by sex.

Figures and their sources: docs/lifter.md ("Body-size prior"). Adults only: a child is placed too far.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The stature the reference bone lengths (synth.REFERENCE_BONES) stand for: hip-to-ankle 0.85 m is 0.491 of
# stature and hip-to-shoulder 0.50 m is 0.288 of it in Winter's segment table -> 1.731 and 1.736 m.
REFERENCE_STATURE = 1.73


@dataclass(frozen=True)
class StaturePrior:
    """Stature ~ N(mean, sd) per sex (m), clipped at ``clip`` sd; women a ``female_share`` of the people.
    Defaults: US adults 20+, NHANES 2015–2018 (men 175.3 cm, women 161.3 cm; sd ≈ 7 cm within each sex)."""

    male_mean: float = 1.753
    male_sd: float = 0.076
    female_mean: float = 1.613
    female_sd: float = 0.071
    female_share: float = 0.5
    clip: float = 3.0
    # breadths relative to stature, women / men (approximate ratios of mean breadth to mean stature in adult
    # anthropometric surveys): shoulders (biacromial) narrower, hips (bi-iliac) wider
    female_shoulders: float = 0.965
    female_hips: float = 1.06

    @property
    def mean(self) -> float:
        """Population mean stature (m)."""
        return (1 - self.female_share) * self.male_mean + self.female_share * self.female_mean

    def sample(
        self, n: int, device: torch.device | str = "cpu", g: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Statures [n] (m) and whether each is a woman [n] bool."""
        female = torch.rand(n, device=device, generator=g) < self.female_share
        z = torch.randn(n, device=device, generator=g).clamp(-self.clip, self.clip)
        mean = torch.where(female, self.female_mean, self.male_mean)
        sd = torch.where(female, self.female_sd, self.male_sd)
        return mean + sd * z, female
