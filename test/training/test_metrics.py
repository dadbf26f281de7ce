"""Pose metrics: alignment invariances and known values."""

import math

import torch

from abspose.training.metrics import a_mpjpe, mpjpe, mrpe, pa_mpjpe, pck_abs, procrustes


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def test_alignment_invariances():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(8, 18, 3, generator=g)
    shifted = gt + torch.tensor([0.3, -0.2, 1.0])
    assert mpjpe(shifted, gt).max() < 1e-6
    assert torch.allclose(a_mpjpe(shifted, gt), torch.full((8,), math.sqrt(0.09 + 0.04 + 1.0)), atol=1e-5)
    similar = 1.7 * gt @ _rotation(0.8).T + torch.tensor([1.0, 2.0, 3.0])
    assert pa_mpjpe(similar, gt).max() < 1e-4 and pa_mpjpe(similar, gt).shape == (8,)
    noisy = gt + 0.05 * torch.randn(8, 18, 3, generator=g)
    assert pa_mpjpe(noisy, gt).shape == (8,) and (pa_mpjpe(noisy, gt) < mpjpe(noisy, gt)).all()
    assert mpjpe(similar, gt).min() > 0.1
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0])  # a reflection is not a rotation: PA must not undo it
    assert pa_mpjpe(mirrored, gt).min() > 0.05
    assert torch.allclose(procrustes(similar, gt), gt, atol=1e-4)


def test_root_error_and_pck():
    gt = torch.zeros(2, 18, 3)
    pred = gt.clone()
    pred[0, :9, 0] = 0.1
    pred[1, :, 2] = 0.2
    assert torch.allclose(pck_abs(pred, gt), torch.tensor([1.0, 0.0]))
    assert torch.allclose(mrpe(pred[:, 0], gt[:, 0]), torch.tensor([0.1, 0.2]))


def test_mpjpe_over_a_mask_counts_only_those_joints():
    gt = torch.zeros(3, 18, 3)
    pred = gt.clone()
    pred[:, 5, 0] = 0.18  # one joint 18 cm off (the pelvis, joint 0, stays: nothing moves with the roots)
    mask = torch.ones(3, 18, dtype=torch.bool)
    mask[1, 5] = False  # sample 1 did not see that joint
    mask[2] = False  # sample 2 saw nothing
    seen = mpjpe(pred, gt, mask)
    assert torch.allclose(seen[:2], torch.tensor([0.01, 0.0])) and torch.isnan(seen[2])
    assert torch.allclose(mpjpe(pred, gt), torch.full((3,), 0.01))
