"""Closed-form (Mehta) translation: exact under weak perspective, close under perspective."""

import torch

from abspose.training.baseline import closed_form_translation


def test_recovers_translation_of_a_weak_perspective_projection():
    g = torch.Generator().manual_seed(0)
    rel = 0.4 * torch.randn(16, 17, 3, generator=g)
    rel -= rel[:, :1]
    t = torch.stack(
        [torch.rand(16, generator=g) * 2 - 1, torch.rand(16, generator=g) - 0.5, 2 + 8 * torch.rand(16, generator=g)],
        -1,
    )
    K = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]]).expand(16, 3, 3)
    # weak perspective: every joint at the root's depth
    kp = (rel[..., :2] + t[:, None, :2]) / t[:, None, 2:3] * 600 + torch.tensor([320.0, 240.0])
    mask = torch.ones(16, 17, dtype=torch.bool)
    assert torch.allclose(closed_form_translation(rel, kp, mask, K), t, rtol=1e-4, atol=1e-4)
    # perspective: a few percent of the distance
    pts = rel + t[:, None]
    kp_persp = pts[..., :2] / pts[..., 2:3] * 600 + torch.tensor([320.0, 240.0])
    err = (closed_form_translation(rel, kp_persp, mask, K) - t).norm(dim=-1) / t[:, 2]
    assert err.median() < 0.05


def test_masked_joints_do_not_count():
    g = torch.Generator().manual_seed(1)
    rel = 0.4 * torch.randn(4, 17, 3, generator=g)
    t = torch.tensor([0.5, 0.2, 4.0]).expand(4, 3)
    K = torch.tensor([[500.0, 0, 300], [0, 500.0, 200], [0, 0, 1]]).expand(4, 3, 3)
    kp = (rel[..., :2] + t[:, None, :2]) / 4.0 * 500 + torch.tensor([300.0, 200.0])
    mask = torch.ones(4, 17, dtype=torch.bool)
    mask[:, 10:] = False
    kp[:, 10:] = 1e6  # garbage where masked
    assert torch.allclose(closed_form_translation(rel, kp, mask, K), t, atol=1e-3)
