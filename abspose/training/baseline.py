"""Closed-form baseline (Mehta et al.): the translation that best reprojects a root-relative 3D pose.

Weak perspective on the visible joints: with p = 2D keypoints minus the principal point (pixels) and
P = x, y of the root-relative pose (metres), the scale s = Σ‖P − P̄‖² / Σ⟨p − p̄, P − P̄⟩ (metres per
pixel) and the translation t = (s·p̄x − P̄x, s·p̄y − P̄y, s·f). The root-relative pose comes from the
lifter itself, so the comparison isolates how the absolute position is found.
"""

from __future__ import annotations

import torch


def closed_form_translation(
    relative: torch.Tensor, keypoints: torch.Tensor, mask: torch.Tensor, K: torch.Tensor
) -> torch.Tensor:
    """Root position [B, 3] (metres, camera frame) from relative [B, J, 3] (m), keypoints [B, J, 2] (px,
    same joints), mask [B, J] and K [B, 3, 3]."""
    m = mask.to(relative.dtype)[..., None]
    n = m.sum(1).clamp(min=1)
    fxy = torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)
    f = torch.sqrt(fxy.prod(-1))
    p = (keypoints - K[:, None, :2, 2]) / fxy[:, None] * f[:, None, None]  # square pixels
    P = relative[..., :2]
    pb, Pb = (p * m).sum(1) / n, (P * m).sum(1) / n
    num = (((P - Pb[:, None]) ** 2) * m).sum((1, 2))
    den = (((p - pb[:, None]) * (P - Pb[:, None])) * m).sum((1, 2))
    s = num / den.clamp(min=1e-9)
    return torch.stack([s * pb[:, 0] - Pb[:, 0], s * pb[:, 1] - Pb[:, 1], s * f], -1)
