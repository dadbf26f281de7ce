"""The detector error mixture: sampling and the EM fit that recovers its parameters."""

import torch

from abspose import skeleton as sk
from abspose.training.noise2d import NoiseModel, fit_em


def test_em_recovers_known_mixture_parameters():
    g = torch.Generator().manual_seed(0)
    j = len(sk.INPUT_JOINTS)
    true = NoiseModel(
        gamma=torch.linspace(0.75, 0.97, j),
        sigma=torch.linspace(0.01, 0.03, j),
        mu=torch.full((j, 2), 0.004),
        box=0.3,
        floor_px=0.0,
    )
    height = torch.full((20000,), 300.0)
    errors = true.sample(height, g) / height[:, None, None]  # in person heights
    fit = fit_em(errors, box=0.3)
    # ~3 standard errors of 20,000 samples (γ: √(γ(1-γ)/n) ≤ 0.003; σ: ≈ 1/√(2nγ) ≤ 0.6 %)
    assert torch.allclose(fit.gamma, true.gamma, atol=0.01, rtol=0)
    assert torch.allclose(fit.sigma, true.sigma, rtol=0.015, atol=0)
    assert torch.allclose(fit.mu, true.mu, atol=0.002)


def test_em_ignores_invalid_pairs():
    g = torch.Generator().manual_seed(1)
    model = NoiseModel.default()
    height = torch.full((5000,), 200.0)
    errors = model.sample(height, g) / 200.0
    corrupted = errors.clone()
    corrupted[:1000] = float("nan")  # undetected joints
    fit = fit_em(corrupted)
    ref = fit_em(errors[1000:])
    assert torch.allclose(fit.sigma, ref.sigma, rtol=1e-4) and torch.allclose(fit.gamma, ref.gamma, atol=1e-4)


def test_default_noise_scales_with_person_size_and_has_outliers():
    g = torch.Generator().manual_seed(2)
    model = NoiseModel.default()
    small = model.sample(torch.full((20000,), 60.0), g).norm(dim=-1)
    large = model.sample(torch.full((20000,), 600.0), g).norm(dim=-1)
    assert 7 < large.median() / small.median() < 10  # proportional, plus the 1 px floor for small people
    # outliers reach far beyond the Gaussian core (3σ of the widest joint)
    assert (large > 3 * model.sigma.max() * 600 * 1.5).float().mean() > 0.02
    assert torch.equal(NoiseModel.clean().sample(torch.full((10,), 100.0), g), torch.zeros(10, len(sk.INPUT_JOINTS), 2))
