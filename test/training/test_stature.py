"""The body-size prior: adult statures by sex, as the survey gives them."""

from __future__ import annotations

import torch

from abspose.training.stature import StaturePrior


def test_statures_are_a_mixture_of_the_two_sexes():
    prior = StaturePrior()
    stature, female = prior.sample(200_000, g=torch.Generator().manual_seed(0))
    assert abs(female.float().mean().item() - 0.5) < 0.01
    for sex, mean, sd in ((female, prior.female_mean, prior.female_sd), (~female, prior.male_mean, prior.male_sd)):
        assert abs(stature[sex].mean().item() - mean) < 0.001 and abs(stature[sex].std().item() - sd) < 0.001
    assert abs(stature.mean().item() - prior.mean) < 0.001 and abs(prior.mean - 1.683) < 1e-9
    lo, hi = prior.female_mean - 3 * prior.female_sd, prior.male_mean + 3 * prior.male_sd
    assert stature.min().item() >= lo - 1e-6 and stature.max().item() <= hi + 1e-6  # clipped at 3 sd
    men_only, _ = StaturePrior(female_share=0.0).sample(1000, g=torch.Generator().manual_seed(1))
    assert abs(men_only.mean().item() - prior.male_mean) < 0.01
