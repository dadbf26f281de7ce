"""``abspose train-lifter`` and ``abspose eval-lifter``."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from functools import partial
from pathlib import Path

from abspose.cli import command, number

STEPS = number(int, 3, why="the one-cycle schedule needs a warm-up and a decay step")
BATCH = number(int, 2, why="batch norm needs two samples")
COUNT = number(int, 1)
JITTER = number(float, 0.0, 0.4, why="a bone-length sd as a fraction of the length, clipped at 2.5 sd")


ABLATIONS = {
    # name: (TrainConfig changes, LifterConfig changes)
    "reference (short)": ({}, {}),
    "no location/scale features": ({}, {"loc_scale": False}),
    "clean 2D training": ({"clean_2d": True}, {}),
    "L2 loss": ({"loss": "l2"}, {}),
    "no made postures": ({"postures": 0.0}, {}),
    "canonical depth, trained at f 500–700": ({"focal": (500.0, 700.0)}, {}),
    "raw depth, trained at f 500–700": ({"focal": (500.0, 700.0)}, {"canonical": False}),
    # PoseLifter's setting: location and scale in pixels only, so the net cannot infer f from its inputs
    "canonical depth, pixel-only features, trained at f 500–700": (
        {"focal": (500.0, 700.0)},
        {"focal_features": False},
    ),
    "raw depth, pixel-only features, trained at f 500–700": (
        {"focal": (500.0, 700.0)},
        {"focal_features": False, "canonical": False},
    ),
}


def _default_data() -> str:
    return os.environ.get("ABSPOSE_DATA", str(Path("..") / "shared" / "data"))


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", default=_default_data(), help="folder holding mocap/ (default: $ABSPOSE_DATA or ../shared/data)"
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")


def _train_args(p: argparse.ArgumentParser) -> None:
    from abspose.training.train import TrainConfig

    d = TrainConfig()
    _data_args(p)
    p.add_argument("--output", "-o", default="lifter.safetensors", help="checkpoint to write (safetensors)")
    p.add_argument("--steps", type=STEPS, default=d.steps, help=f"optimizer steps (default {d.steps})")
    p.add_argument("--batch", type=BATCH, default=d.batch, help=f"samples per step (default {d.batch})")
    p.add_argument("--width", type=COUNT, default=d.model.width, help=f"MLP width (default {d.model.width})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--postures",
        type=float,
        default=d.postures,
        help=f"share of each batch in made postures: sitting, kneeling, bending, lying, ... (default {d.postures})",
    )
    p.add_argument(
        "--convention-jitter",
        type=JITTER,
        default=d.convention_jitter,
        help="sd of the length jitter of the bones that joint conventions set (hip and shoulder joints, head, "
        f"toes, spine), fraction of the length (default {d.convention_jitter}; the other bones {d.bone_jitter})",
    )
    p.add_argument(
        "--fp32",
        action="store_true",
        help="float32 throughout (default: bf16 autocast in the hidden layers where the device runs bf16 natively)",
    )
    p.add_argument(
        "--plain-optimizer",
        action="store_true",
        help="unfused AdamW, denormal floats kept (default: fused AdamW and denormals flushed to zero, 16-24 %% "
        "faster on a 2-core CPU, as the shipped checkpoint was trained; fused AdamW on CPU needs torch 2.4+)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("train-lifter", "train the 3D lifter on the shared CMU mocap (reproduces the shipped model)", _train_args)
def _train(args: argparse.Namespace) -> int:
    import torch

    from abspose.training.dataset import load_mocap_set
    from abspose.training.train import TrainConfig, train

    if not args.plain_optimizer:  # before the first parallel op: worker threads keep the mode they start with
        torch.set_flush_denormal(True)
    data = load_mocap_set(args.data)
    d = TrainConfig()
    cfg = replace(
        d,
        steps=args.steps,
        batch=args.batch,
        seed=args.seed,
        postures=args.postures,
        convention_jitter=args.convention_jitter,
        bf16=d.bf16 and not args.fp32,
        fast_optimizer=not args.plain_optimizer,
        model=replace(d.model, width=args.width),
    )
    out = Path(args.output)
    _, metrics = train(
        data.split("train"), data.split("val"), cfg, out=out, device=args.device, progress=not args.no_progress
    )
    print(
        f"wrote {out} (val MPJPE {metrics['mpjpe_mm']:.1f} mm, MRPE {metrics['mrpe_mm']:.1f} mm, "
        f"{metrics['train_seconds']:.0f} s)"
    )
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    p.add_argument("--weights", default=None, help="lifter checkpoint (default: the shipped one)")
    p.add_argument("--samples", type=COUNT, default=20000, help="held-out samples (default 20000)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--ablations", action="store_true", help="also train and score the ablation models")
    p.add_argument("--ablation-steps", type=STEPS, default=2000, help="training steps per ablation (default 2000)")
    p.add_argument("--only", default="", help="train only the ablations whose name contains this text")
    p.add_argument(
        "--diagnostics",
        action="store_true",
        help="also score the shipped lifter on the same samples without flip averaging, and with clean 2D "
        "and with Gaussian 2D errors only (what the 2D errors cost)",
    )
    bodies = p.add_mutually_exclusive_group()
    bodies.add_argument(
        "--convention-jitter",
        type=JITTER,
        default=None,
        help="held-out bodies with this sd of the length jitter of the bones that joint conventions set (hip and "
        "shoulder joints, head, toes, spine), as other mocap sets' and detectors' joints vary (default: as the "
        "other bones)",
    )
    bodies.add_argument(
        "--native-bones",
        action="store_true",
        help="held-out clips with their own skeletons, not retargeted to the stature prior (the exp-map clips' "
        "CMU subject, the Daz template): other proportions and joint conventions than training's",
    )
    p.add_argument("--output", "-o", default=None, help="also write the markdown table to this file")
    p.add_argument(
        "--depth",
        action="store_true",
        help="depth mode: rendered RGB-D scenes through depth readout and fusion, vs monocular",
    )
    p.add_argument("--scenes", type=COUNT, default=1500, help="rendered scenes in depth mode (default 1500)")


def _eval_depth(args: argparse.Namespace, val, model) -> str:
    from abspose import skeleton as sk
    from abspose.training.evaluate import (
        COLUMNS,
        DEPTH_BANDS,
        NODE_ROW,
        RADII_ROW,
        UNCERTAINTY_COLUMNS,
        Prediction,
        depth_inputs,
        depth_predictions,
        markdown,
        score,
    )
    from abspose.training.noise2d import NoiseModel
    from abspose.training.render import SensorModel
    from abspose.training.scenes import make_scenes, vary_girth

    scenes = make_scenes(val, args.scenes, args.seed, NoiseModel.default())
    inputs = depth_inputs(scenes, args.seed + 1)
    preds = depth_predictions(model, scenes.targets, inputs)
    valid = inputs.readout.valid.float().mean().item()
    print(f"{len(scenes)} scenes; {100 * valid:.0f} % of the joint readouts valid", flush=True)
    # diagnostic: the same scenes seen by a perfect sensor (no noise, holes, flying pixels, range limit)
    perfect = SensorModel(noise=(0.0, 0.0), holes=(0.0, 0.0), dropout=0.0, flying=0.0, max_range=(1e3, 1e3))
    clean = depth_predictions(model, scenes.targets, depth_inputs(scenes, args.seed + 1, perfect))
    preds[f"{NODE_ROW.split(' (')[0]}, perfect depth sensor (diagnostic)"] = clean[NODE_ROW]
    preds[f"{RADII_ROW.split(' (')[0]}, perfect depth sensor (diagnostic)"] = clean[RADII_ROW]
    # diagnostic: people built unlike the capsule model the surface model assumes (each body's girth × e^N(0, 0.15²))
    built = depth_predictions(
        model, scenes.targets, depth_inputs(vary_girth(scenes, 0.15, args.seed + 2), args.seed + 1)
    )
    for row in (NODE_ROW, RADII_ROW):
        preds[f"{row.split(' (')[0]}, bodies' girth ±15 % (diagnostic)"] = built[row]
    # diagnostic: the node's root ray at the true depth — the X/Y error that comes from the 2D keypoints alone
    node, true_z = preds[NODE_ROW], scenes.targets.joints[:, sk.PELVIS, 2:3]
    root = node.root / node.root[:, 2:3] * true_z
    preds["the node's root ray at the true depth (diagnostic: X/Y alone)"] = Prediction(
        node.joints - node.root[:, None] + root[:, None], root
    )
    results = {k: score(v, scenes.targets, DEPTH_BANDS) for k, v in preds.items()}
    return markdown(results, COLUMNS + UNCERTAINTY_COLUMNS)


@command("eval-lifter", "score the lifter on held-out mocap through random cameras (markdown table)", _eval_args)
def _eval(args: argparse.Namespace) -> int:
    from abspose.lifter import Lifter
    from abspose.training.dataset import load_mocap_set
    from abspose.training.evaluate import (
        LIFTER_COLUMNS,
        baseline_predictor,
        depth_bias_by_stature,
        ground_predictor,
        lifter_predictor,
        markdown,
        posture_sets,
        score,
        score_postures,
    )
    from abspose.training.noise2d import NoiseModel
    from abspose.training.stature import StaturePrior
    from abspose.training.synth import CameraRange, bone_jitter
    from abspose.training.train import TrainConfig, train, validation_set

    model = Lifter.load(args.weights, args.device)  # a bad checkpoint fails before minutes of data loading
    data = load_mocap_set(args.data)
    val = data.split("val").to(args.device)
    if args.depth:
        table = _eval_depth(args, val.cpu(), model)
        print(table)
        if args.output:
            Path(args.output).write_text(table + "\n")
        return 0
    jitter = None if args.native_bones else bone_jitter(conventions=args.convention_jitter).to(args.device)
    batch = validation_set(val, args.samples, args.seed, NoiseModel.default(), CameraRange(), jitter=jitter)
    # the lifter tables also split people fully in the image from cut ones, and people on the floor from others
    scored = partial(score, frame=True, contact=True)
    # postures the mocap lacks, made from the held-out clips: scored apart from the real poses
    sets = posture_sets(val, max(1, args.samples // 10), args.seed + 7, NoiseModel.default(), jitter)
    predictors = {
        "lifter (shipped)": lifter_predictor(model),
        "lifter (shipped) + ground plane (each camera's true floor; feet on it place the person)": ground_predictor(
            model
        ),
        "closed-form translation (Mehta) on the lifter's relative pose": baseline_predictor(model),
    }
    preds = {name: p(batch) for name, p in predictors.items()}
    results = {name: scored(preds[name], batch) | score_postures(p, sets) for name, p in predictors.items()}
    shipped = preds["lifter (shipped)"]
    if args.diagnostics:  # the same samples without flip averaging; the same poses and cameras, other 2D errors
        model.flip_average = False
        results["lifter (shipped), no flip averaging (diagnostic)"] = scored(lifter_predictor(model)(batch), batch)
        model.flip_average = True
        mixture = NoiseModel.default()
        gauss = replace(mixture, gamma=mixture.gamma.new_ones(mixture.gamma.shape))
        for name, noise in (("clean 2D", NoiseModel.clean()), ("Gaussian 2D errors only, no outliers", gauss)):
            other = validation_set(val, args.samples, args.seed, noise, CameraRange(), jitter=jitter)
            results[f"lifter (shipped), {name} (diagnostic)"] = scored(lifter_predictor(model)(other), other)
    if args.ablations:
        d = TrainConfig()
        for name, (tc, mc) in ABLATIONS.items():
            if args.only not in name:
                continue
            # ablations are trained small and short (monocular, width 512, batch 512) and compared with the
            # reference trained the same way, not with the shipped model
            model_cfg = replace(d.model, width=512, depth_inputs=False, **mc)
            cfg = replace(d, steps=args.ablation_steps, batch=512, depth=False, model=model_cfg, **tc)
            print(f"training ablation: {name} ({args.ablation_steps} steps)", flush=True)
            m, _ = train(
                data.split("train"), data.split("val"), cfg, device=args.device, progress=False, log=lambda s: None
            )
            predict = lifter_predictor(m)
            results[f"ablation: {name}"] = scored(predict(batch), batch) | score_postures(predict, sets)
    table = markdown(results, columns=LIFTER_COLUMNS)
    bias = depth_bias_by_stature({"lifter (shipped)": shipped}, batch, StaturePrior().mean)
    table += "\n**Depth bias by stature** (median predicted / true root depth − 1, monocular)\n\n" + bias + "\n"
    print(table)
    if args.output:
        Path(args.output).write_text(table + "\n")
    return 0
