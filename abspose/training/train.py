"""Lifter training on synthesized samples from the shared mocap (``abspose train-lifter``).

Every step draws fresh training poses, random cameras, detector noise and (for half of the samples) depth
readouts (:mod:`abspose.training.synth`); there are no epochs. Loss (L1, or L2 for the ablation): root-relative
joints in metres + log canonical root depth + root pixel offset (in units of the 2D scale σ), plus a
Laplace likelihood for the per-joint uncertainty head on the detached absolute errors (it learns the
expected error without bending the L1 fit). AdamW, one-cycle cosine learning rate, fixed seed: the same
command reproduces the same weights on the same machine and torch version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from abspose import skeleton as sk
from abspose.lifter import LOG_Z_OFFSET, Lifter, LifterConfig, LiftResult, features, focal
from abspose.precision import bf16_is_fast
from abspose.training.metrics import mpjpe, mrpe
from abspose.training.noise2d import NoiseModel
from abspose.training.postures import mixed
from abspose.training.synth import BONE_JITTER, Batch, CameraRange, DepthRange, bone_jitter, project, synthesize


@dataclass
class TrainConfig:
    """What ``train-lifter`` does. Defaults reproduce the shipped checkpoint."""

    steps: int = 45000
    batch: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    loss: str = "l1"  # or "l2" (ablation)
    clean_2d: bool = False  # ablation: train without 2D noise
    depth: bool = True  # synthesize depth readouts for a share of the samples
    focal: tuple[float, float] = (300.0, 2000.0)
    # share of each batch in postures the mocap lacks (sitting, kneeling, bending, ...; training.postures),
    # drawn from a pool made once from the training poses (making them every step: +30 % time). 0.2 in the
    # shipped checkpoint (since 2026-12-06): sitting 82 -> 77 mm, bending 127 -> 104, standing 67.3 -> 67.7;
    # with the ninth kind, tumbling (since 2026-12-07): made tumbling 137 -> 94 mm, real people +0.3 mm
    postures: float = 0.2
    posture_pool: int = 200_000
    # sd of the length jitter of the bones whose length depends on joint conventions (synth.CONVENTION_BONES:
    # hip and shoulder joints, head, toes, spine) and of the other bones, fraction of the length. 0.10 for the
    # former was tried (2026-12-07): other skeletons lifted better, real TU/e people placed 3 % farther; not
    # shipped (docs/lifter.md, "Other skeletons")
    convention_jitter: float = BONE_JITTER
    bone_jitter: float = BONE_JITTER
    # hidden layers under bfloat16 autocast, output layer in fp32 (1.5x faster on AMX CPUs), where the device
    # has native bf16 (bf16_is_fast); elsewhere fp32
    bf16: bool = True
    # fused AdamW + denormal floats flushed to zero (the Adam moments of rarely driven weights decay into
    # denormals, which made late CPU steps up to 1.9x slower; docs/lifter.md). The shipped checkpoint is
    # trained with it (since 2026-12-05). Fused AdamW on CPU needs torch 2.4.
    fast_optimizer: bool = True
    # fresh samples every step (no epochs): dropout only slows the fit (3,000-step probe: 95.2 vs 96.6 mm)
    model: LifterConfig = field(default_factory=lambda: LifterConfig(width=768, dropout=0.0))


@contextmanager
def flush_denormal(on: bool) -> Iterator[None]:
    """Flush denormal floats to zero on the CPU while in the block (PyTorch's default, off, after it).

    PyTorch sets the mode for the calling thread only: intra-op worker threads keep the mode they were
    created with (a 4 M-element multiply on denormals with 2 threads: 11 ms set late, 0.9 ms set before the
    first parallel op). The fused AdamW step is fast either way; ``train-lifter`` (unless
    ``--plain-optimizer``) sets the mode before its first parallel op so every thread flushes."""
    flushed = on and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def sample_batch(
    poses: torch.Tensor,
    n: int,
    noise: NoiseModel,
    cams: CameraRange,
    depth: DepthRange | None,
    g: torch.Generator,
    made: torch.Tensor | None = None,
    share: float = 0.0,
    jitter: float | torch.Tensor | None = BONE_JITTER,
) -> Batch:
    """At least ``n`` synthesized samples (drawn in rounds; synthesis drops undetectable ones) of the
    ``poses`` [N, 18, 3], a ``share`` of them drawn from the ``made`` postures [M, 18, 3] instead; bodies with
    the bone-length ``jitter`` of :func:`~abspose.training.synth.retarget` (None: the poses' own bone lengths,
    not retargeted; their statures NaN)."""
    parts: list[Batch] = []
    have = 0
    while have < n:
        idx = torch.randint(poses.shape[0], (int(n * 3.5),), generator=g, device=poses.device)
        drawn = poses[idx]
        k = round(share * len(idx)) if made is not None else 0
        if k:
            drawn[:k] = made[torch.randint(made.shape[0], (k,), generator=g, device=made.device)]
        b = synthesize(drawn, noise, cams, depth, g, jitter=jitter)
        parts.append(b)
        have += len(b)
    cat = {k: torch.cat([getattr(p, k) for p in parts])[:n] for k in Batch.__dataclass_fields__}
    return Batch(**cat)


def targets(batch: Batch, u: torch.Tensor, sigma: torch.Tensor) -> dict[str, torch.Tensor]:
    root = batch.joints[:, sk.PELVIS]
    f = focal(batch.K)
    root_px = project(root[:, None], batch.K)[:, 0]
    return {
        "log_z": torch.log(root[:, 2] / f),
        "delta": (root_px - batch.K[:, :2, 2] - u) / sigma[:, None],
        "log_z_raw": torch.log(root[:, 2]),
        "rel": batch.joints - root[:, None],
    }


def loss_terms(
    model: Lifter, y: torch.Tensor, res: LiftResult, t: dict[str, torch.Tensor], batch: Batch, kind: str
) -> dict[str, torch.Tensor]:
    err = (lambda d: d.abs()) if kind == "l1" else (lambda d: d.square())
    log_z_pred = y[:, 0] - LOG_Z_OFFSET if model.cfg.canonical else y[:, 0] - 1.0
    log_z_true = t["log_z"] if model.cfg.canonical else t["log_z_raw"]
    abs_err = (res.joints - batch.joints).norm(dim=-1).detach()
    return {
        "rel": err(res.relative - t["rel"]).mean() * 3,  # per joint, metres
        "depth": err(log_z_pred - log_z_true).mean(),
        "pixel": 0.2 * err(y[:, 1:3] - t["delta"]).mean(),
        "uncertainty": 0.05 * (abs_err / res.uncertainty + torch.log(res.uncertainty)).mean(),
    }


def validation_set(
    poses: torch.Tensor,
    n: int,
    seed: int,
    noise: NoiseModel,
    cams: CameraRange,
    depth: DepthRange | None = None,
    jitter: float | torch.Tensor | None = BONE_JITTER,
) -> Batch:
    g = torch.Generator(device=poses.device).manual_seed(seed)
    return sample_batch(poses, n, noise, cams, depth, g, jitter=jitter)


@torch.no_grad()
def evaluate(model: Lifter, batch: Batch, use_depth: bool = False) -> dict[str, float]:
    model.eval()
    res = model(batch.keypoints, batch.mask, batch.K, batch.depth if use_depth else None)
    root = batch.joints[:, sk.PELVIS]
    return {
        "mpjpe_mm": 1000 * mpjpe(res.joints, batch.joints).mean().item(),
        "mrpe_mm": 1000 * mrpe(res.root, root).mean().item(),
    }


def train(
    train_poses: torch.Tensor,
    val_poses: torch.Tensor,
    cfg: TrainConfig,
    out: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    log=print,
) -> tuple[Lifter, dict[str, float]]:
    """Train a lifter on ``train_poses`` [N, 18, 3] (world, Y up); validate on ``val_poses``. Saves to ``out``."""
    if cfg.steps < 3 or cfg.batch < 2:
        raise ValueError(f"train: steps {cfg.steps} (needs >= 3: warm-up and decay) and batch {cfg.batch} (needs >= 2)")
    torch.manual_seed(cfg.seed)
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(cfg.seed)
    train_poses, val_poses = train_poses.to(dev), val_poses.to(dev)
    noise = NoiseModel.clean() if cfg.clean_2d else NoiseModel.default()
    cams = CameraRange(focal=cfg.focal)
    depth = DepthRange() if cfg.depth and cfg.model.depth_inputs else None
    bf16 = cfg.bf16 and bf16_is_fast(dev)
    if cfg.bf16 and not bf16:
        log(
            f"train-lifter: no native bfloat16 on {dev} ({torch.backends.cpu.get_cpu_capability()}): float32 throughout"
        )
    model = Lifter(cfg.model).to(dev)
    with torch.no_grad():  # start the depth head near a typical person (Z/f of 3 m at 600 px)
        model.out.bias[0] = math.log(3.0 / 600) + LOG_Z_OFFSET if cfg.model.canonical else math.log(3.0) + 1.0
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fast_optimizer or None
    )
    warmup = min(0.5, max(0.05, 2.0 / cfg.steps))  # at least 2 warm-up steps (short smoke runs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=warmup)
    made = None
    if cfg.postures > 0:
        pool = min(cfg.posture_pool, cfg.steps * cfg.batch)  # short runs need fewer
        pick = (torch.randint(len(train_poses), (pool,), generator=g, device=dev) for _ in "lu")
        made = mixed(*(train_poses[i] for i in pick), g)
    jitter = bone_jitter(cfg.bone_jitter, cfg.convention_jitter).to(dev)
    val = validation_set(val_poses, 4096, cfg.seed + 1, NoiseModel.default(), CameraRange())
    start = time.time()
    bar = tqdm(range(cfg.steps), desc="train-lifter", disable=not progress, mininterval=2.0)
    metrics: dict[str, float] = {}
    with flush_denormal(cfg.fast_optimizer):
        for step in bar:
            model.train()
            batch = sample_batch(train_poses, cfg.batch, noise, cams, depth, g, made, cfg.postures, jitter)
            x, u, sigma = features(batch.keypoints, batch.mask, batch.K, batch.depth, model.cfg)
            y = model.raw(x, bf16=bf16)
            res = model.decode(y, u, sigma, batch.K)
            terms = loss_terms(model, y, res, targets(batch, u, sigma), batch, cfg.loss)
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            if step % 50 == 0:
                bar.set_postfix({k: f"{v.item():.4f}" for k, v in terms.items()})
            if (step + 1) % max(1, cfg.steps // 10) == 0 or step + 1 == cfg.steps:
                metrics = evaluate(model, val)
                log(
                    f"step {step + 1}/{cfg.steps}: val MPJPE {metrics['mpjpe_mm']:.1f} mm, "
                    f"MRPE {metrics['mrpe_mm']:.1f} mm "
                    f"({time.time() - start:.0f} s)"
                )
    model.eval()
    metrics["train_seconds"] = time.time() - start
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        cfg_dict = asdict(cfg) | {"bf16": bf16}  # what ran: fp32 where the device has no native bf16
        model.half().save(out, {"train_config": cfg_dict, "noise_model": noise.as_dict(), "val": metrics})
        model.float()
    return model, metrics
