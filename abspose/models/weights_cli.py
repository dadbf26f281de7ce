"""`abspose weights`: fetch, verify and convert the model weights into the cache (never at run time)."""

from __future__ import annotations

import argparse
from pathlib import Path

from abspose.cli import command


def _weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", type=Path, help="a mediapipe 0.10.21 wheel, or a folder with one (default: search)")
    p.add_argument("--no-download", action="store_true", help="never run pip download")


@command("weights", "convert BlazePose's weights from the mediapipe 0.10.21 wheel into the cache", _weights_args)
def weights(args: argparse.Namespace) -> int:
    from abspose.models.blazepose_weights import MEDIAPIPE_VERSION, WeightsError, cache_dir, ensure

    source = args.source or f"an installed mediapipe {MEDIAPIPE_VERSION}, a wheel in {cache_dir() / 'wheels'}"
    if not args.source and not args.no_download:
        source += ", else pip download"
    print(f"BlazePose weights from {source}; SHA-256 checked; safetensors into {cache_dir()}", flush=True)
    try:
        paths = ensure(args.source, download=not args.no_download)
    except WeightsError as exc:
        raise ValueError(str(exc)) from exc
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
