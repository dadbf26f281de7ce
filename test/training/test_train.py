"""Training: a short smoke run learns, is reproducible with a seed, and writes a loadable checkpoint."""

import json
import time
from dataclasses import replace

import pytest
import torch

from abspose import skeleton as sk
from abspose.lifter import Lifter, LifterConfig
from abspose.precision import bf16_is_fast
from abspose.training.dataset import load_mocap_set
from abspose.training.evaluate import Prediction, score
from abspose.training.noise2d import NoiseModel
from abspose.training.synth import CameraRange, bone_jitter
from abspose.training.train import TrainConfig, evaluate, flush_denormal, sample_batch, train, validation_set

from conftest import DATA, data_path


@pytest.fixture(scope="module")
def splits():
    data_path("mocap")
    data = load_mocap_set(DATA)
    return data.split("train")[::20], data.split("val")[::20]


def test_smoke_run_learns_reproducibly_and_saves(splits, tmp_path):
    cfg = TrainConfig(steps=60, batch=128, model=LifterConfig(width=64))
    logs: list[str] = []
    start = time.time()
    model, metrics = train(*splits, cfg, out=tmp_path / "a.safetensors", progress=False, log=logs.append)
    assert 0 < metrics["train_seconds"] <= time.time() - start
    vals = [line for line in logs if "val MPJPE" in line]
    assert len(vals) >= 10
    first = float(vals[0].split("MPJPE ")[1].split(" mm")[0])
    # bf16 autocast only where the CPU runs it natively: emulated, a step took 46x as long as in fp32
    assert any("no native bfloat16" in line for line in logs) == (not bf16_is_fast(torch.device("cpu")))
    assert metrics["mpjpe_mm"] < first  # it learns
    again, _ = train(*splits, cfg, out=tmp_path / "b.safetensors", progress=False, log=lambda s: None)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    loaded = Lifter.load(tmp_path / "a.safetensors")
    assert loaded.cfg.width == 64 and "val" in loaded.metadata
    # the checkpoint records the precision that ran, not the one asked for
    assert json.loads(loaded.metadata["train_config"])["bf16"] == bf16_is_fast(torch.device("cpu"))


def test_ablation_switches_train(splits):
    model = LifterConfig(width=32, depth_inputs=False, canonical=False, loc_scale=False)
    cfg = replace(TrainConfig(steps=5, batch=64, depth=False), model=model, loss="l2", clean_2d=True)
    _, metrics = train(*splits, cfg, progress=False, log=lambda s: None)
    assert torch.isfinite(torch.tensor(metrics["mpjpe_mm"]))


def test_training_bodies_take_the_convention_jitter(splits):
    """sample_batch draws bodies with the jitter it is given, and train() hands it TrainConfig's: the same seed
    with another convention jitter trains other weights."""
    g = torch.Generator().manual_seed(2)
    wide = sample_batch(splits[0], 3000, NoiseModel.clean(), CameraRange(), None, g, jitter=bone_jitter(0.03, 0.15))
    g = torch.Generator().manual_seed(2)
    narrow = sample_batch(splits[0], 3000, NoiseModel.clean(), CameraRange(), None, g, jitter=bone_jitter(0.03, 0.03))

    def hip_width(b) -> torch.Tensor:  # over the body's stature, which both draws share the prior of
        width = (b.joints[:, sk.JOINT_INDEX["left_hip"]] - b.joints[:, sk.JOINT_INDEX["right_hip"]]).norm(dim=-1)
        return width / b.stature

    assert hip_width(wide).std() > 2 * hip_width(narrow).std()
    cfg = TrainConfig(steps=3, batch=64, postures=0.0, model=LifterConfig(width=32))
    a, _ = train(*splits, cfg, progress=False, log=lambda s: None)
    b, _ = train(*splits, replace(cfg, convention_jitter=0.3), progress=False, log=lambda s: None)
    c, _ = train(*splits, replace(cfg, convention_jitter=cfg.convention_jitter), progress=False, log=lambda s: None)
    assert not torch.equal(a.out.weight, b.out.weight) and torch.equal(a.out.weight, c.out.weight)


@pytest.mark.parametrize("change", [{"steps": 2}, {"batch": 1}])
def test_too_few_steps_or_samples_are_refused_before_training(splits, change):
    # two steps used to crash inside the one-cycle LR schedule (a division by zero)
    with pytest.raises(ValueError, match=f"{next(iter(change))} {next(iter(change.values()))} "):
        train(*splits, replace(TrainConfig(model=LifterConfig(width=32)), **change), progress=False)


def test_fast_optimizer_learns_reproducibly_and_restores_denormals(splits):
    tiny = torch.tensor([1e-39])  # a denormal float32
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals (no SSE3)")
    with flush_denormal(True):
        assert (tiny * 1.0).item() == 0.0  # flushed inside the block
    assert (tiny * 1.0).item() > 0.0  # PyTorch's default again after it
    cfg = TrainConfig(steps=60, batch=128, model=LifterConfig(width=64), fast_optimizer=True)
    logs: list[str] = []
    model, metrics = train(*splits, cfg, progress=False, log=logs.append)
    assert (tiny * 1.0).item() > 0.0
    first = next(line for line in logs if "val MPJPE" in line)
    assert metrics["mpjpe_mm"] < float(first.split("MPJPE ")[1].split(" mm")[0])  # it learns
    again, _ = train(*splits, cfg, progress=False, log=lambda s: None)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_the_validation_numbers_are_those_of_the_evaluation_tables(splits):
    batch = validation_set(splits[1], 256, 3, NoiseModel.default(), CameraRange())
    model = Lifter.load()
    got = evaluate(model, batch)
    with torch.no_grad():
        res = model(batch.keypoints, batch.mask, batch.K)
    table = score(Prediction(res.joints, res.root), batch)["all"]
    assert got == pytest.approx({"mpjpe_mm": table["MPJPE"], "mrpe_mm": table["MRPE"]}, rel=1e-4)
    assert 30 < got["mpjpe_mm"] < 200 and 50 < got["mrpe_mm"] < 1000


ARMS = tuple(tuple(sk.JOINT_INDEX[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist")) for side in ("left", "right"))


def _elbow_angles(joints: torch.Tensor) -> torch.Tensor:
    """[B, 2] angles (degrees) between each upper arm and its forearm; invariant to the camera, the body's
    size and its bone lengths (synthesis keeps bone directions)."""
    out = []
    for s, e, w in ARMS:
        upper, fore = joints[:, e] - joints[:, s], joints[:, w] - joints[:, e]
        cos = torch.nn.functional.cosine_similarity(upper, fore, dim=-1)
        out.append(torch.rad2deg(torch.acos(cos.clamp(-1, 1))))
    return torch.stack(out, 1)


def test_made_postures_are_drawn_from_the_whole_pool(splits):
    # 200 made postures that differ only in how far both elbows bend (0.5 to 100 degrees, 0.5 apart)
    base = splits[0][0]
    bend = torch.arange(1, 201, dtype=torch.float32) * 0.5
    made = base.repeat(200, 1, 1)
    for s, e, w in ARMS:
        upper = torch.nn.functional.normalize(base[e] - base[s], dim=0)
        side = torch.nn.functional.normalize(torch.linalg.cross(upper, torch.tensor([0.0, 0.0, 1.0])), dim=0)
        fore = torch.cos(torch.deg2rad(bend))[:, None] * upper + torch.sin(torch.deg2rad(bend))[:, None] * side
        made[:, w] = base[e] + (base[w] - base[e]).norm() * fore
    g = torch.Generator().manual_seed(0)
    batch = sample_batch(splits[0], 512, NoiseModel.default(), CameraRange(), None, g, made, share=1.0)
    angles = _elbow_angles(batch.joints)
    assert torch.allclose(angles[:, 0], angles[:, 1], atol=0.05)  # each sample is one made posture (mirrored or not)
    drawn = torch.round(angles[:, 0] / 0.5).long()
    assert drawn.min() >= 1 and drawn.max() <= 200
    assert len(drawn.unique()) > 150  # 512 draws from 200: about 185 distinct (from 18 only: at most 18)
    half = sample_batch(splits[0], 512, NoiseModel.default(), CameraRange(), None, g, made, share=0.5)
    from_made = (_elbow_angles(half.joints) - torch.round(_elbow_angles(half.joints) / 0.5) * 0.5).abs().amax(1) < 0.05
    assert 0.35 < from_made.float().mean() < 0.65  # the real poses' elbows fall on the 0.5-degree grid rarely
