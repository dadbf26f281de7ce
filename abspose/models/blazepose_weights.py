"""BlazePose weights: from mediapipe 0.10.21's wheel to torch modules, converted once and cached.

The weights are Google's (Apache-2.0), shipped inside the PyPI wheel ``mediapipe==0.10.21``. On first use
we find the two ``.tflite`` files (an installed mediapipe, a wheel file or folder you name, a wheel already
in the cache, or ``pip download --no-deps mediapipe==0.10.21``), check their SHA-256 against the pinned
values, convert them with :func:`abspose.models.tflite_graph.parse_tflite` and save them as safetensors (graph spec
and licence in the metadata) under ``$ABSPOSE_CACHE`` (default ``~/.cache/abspose``). Later loads read only
the safetensors: no pickle, no TensorFlow, no mediapipe.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from abspose.models.tflite_graph import GraphError, TFLiteGraph, parse_tflite

MEDIAPIPE_VERSION = "0.10.21"
# name -> (path inside the mediapipe package, SHA-256 of the .tflite)
MODELS: dict[str, tuple[str, str]] = {
    "detector": (
        "modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "landmark": (
        "modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
}
FORMAT_VERSION = "1"
MASK_OUTPUT = 2  # the landmark model's person mask (segmentation logits), [B,1,256,256]
LICENSE_NOTE = (
    "BlazePose models from mediapipe 0.10.21 (https://github.com/google-ai-edge/mediapipe), "
    "Copyright Google LLC, Apache License 2.0. Converted to safetensors by abspose_ros; weights unchanged."
)


class WeightsError(OSError):
    """The BlazePose weights could not be found, verified or converted; the message says where it looked."""


def cache_dir() -> Path:
    return Path(os.environ.get("ABSPOSE_CACHE", Path.home() / ".cache" / "abspose"))


def weights_path(name: str) -> Path:
    return cache_dir() / f"blazepose_{name}.safetensors"


def _check(name: str, data: bytes, origin: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODELS[name][1]:
        raise WeightsError(f"{origin}: SHA-256 {digest} is not that of mediapipe {MEDIAPIPE_VERSION}'s {name} model")
    return data


def _from_wheel(name: str, wheel: Path) -> bytes:
    inner = "mediapipe/" + MODELS[name][0]
    try:
        with zipfile.ZipFile(wheel) as zf:
            return _check(name, zf.read(inner), f"{wheel}!{inner}")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise WeightsError(f"{wheel}: not a mediapipe wheel holding {inner} ({exc})") from exc


def find_tflite(name: str, source: str | Path | None = None, download: bool = True) -> bytes:
    """Bytes of one of the two .tflite files. ``source``: a mediapipe wheel, or a folder holding one or an
    unpacked mediapipe package. Without it: installed mediapipe, cached wheel, then pip download."""
    rel = MODELS[name][0]
    tried: list[str] = []
    if source is not None:
        src = Path(source)
        if src.is_file():
            return _from_wheel(name, src)
        for cand in (src / rel, src / "mediapipe" / rel):
            if cand.is_file():
                return _check(name, cand.read_bytes(), str(cand))
        wheels = sorted(src.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl")) if src.is_dir() else []
        if wheels:
            return _from_wheel(name, wheels[0])
        raise WeightsError(f"{src}: neither a mediapipe {MEDIAPIPE_VERSION} wheel nor a folder holding {rel}")
    spec = importlib.util.find_spec("mediapipe")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            cand = Path(loc) / rel
            if cand.is_file():
                return _check(name, cand.read_bytes(), str(cand))
            tried.append(str(cand))
    wheel_dir = cache_dir() / "wheels"
    wheels = sorted(wheel_dir.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if not wheels and download:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        print(
            f"abspose: downloading mediapipe=={MEDIAPIPE_VERSION} (one wheel, ~35-50 MB, from the package index pip "
            f"is set up for) with `pip download --no-deps` into {wheel_dir}",
            file=sys.stderr,
        )
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheel_dir)]
        proc = subprocess.run([*cmd, f"mediapipe=={MEDIAPIPE_VERSION}"], capture_output=True, text=True)
        if proc.returncode != 0:
            tried.append(f"pip download mediapipe=={MEDIAPIPE_VERSION}: {proc.stderr.strip()[-300:]}")
        wheels = sorted(wheel_dir.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if wheels:
        return _from_wheel(name, wheels[0])
    tried.append(f"{wheel_dir}/mediapipe-{MEDIAPIPE_VERSION}-*.whl")
    raise WeightsError(
        f"BlazePose {name} model not found; looked in: {'; '.join(tried)}. Run `abspose weights` once (it "
        f"downloads the mediapipe {MEDIAPIPE_VERSION} wheel with pip), or `abspose weights --source WHEEL` offline."
    )


def convert(name: str, source: str | Path | None = None, download: bool = True) -> Path:
    """Convert one model to safetensors in the cache (overwriting); returns the file."""
    data = find_tflite(name, source, download)
    spec, consts = parse_tflite(data)
    out = weights_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: torch.from_numpy(v) for k, v in consts.items()}
    meta = {
        "graph": json.dumps(spec),
        "source_sha256": MODELS[name][1],
        "format": FORMAT_VERSION,
        "license": LICENSE_NOTE,
    }
    tmp = out.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # two first runs at once: no shared name
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(out)
    (out.parent / "BLAZEPOSE_NOTICE.txt").write_text(LICENSE_NOTE + "\n")
    return out


def ensure(source: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Make sure both models are converted and valid in the cache; returns their paths."""
    paths = {}
    for name in MODELS:
        path = weights_path(name)
        if source is not None or not _valid(name, path):
            path = convert(name, source, download)
        paths[name] = path
    return paths


def converted(path: Path, source_sha256: str, version: str) -> bool:
    """Whether ``path`` is a safetensors file converted from that source by that converter version."""
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # a truncated or foreign file: convert again
        return False
    return meta.get("source_sha256") == source_sha256 and meta.get("format") == version


def _valid(name: str, path: Path) -> bool:
    return converted(path, MODELS[name][1], FORMAT_VERSION)


def load_graph(
    name: str, outputs: list[int] | None = None, device: str | torch.device = "cpu", mask_size: int | None = None
) -> TFLiteGraph:
    """The converted model as a torch module in eval mode on ``device``. Never downloads (a robot is often
    offline): converts from an installed mediapipe or a cached wheel, else WeightsError naming the command.
    ``mask_size``: the landmark model's person mask (output MASK_OUTPUT) at that side instead of 256 px
    (:func:`mask_at`)."""
    path = ensure(download=False)[name]
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as f:
        spec = json.loads((f.metadata() or {})["graph"])
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    if mask_size is not None:
        tensors = mask_at(spec, tensors, mask_size)
    return TFLiteGraph(spec, tensors, outputs=outputs).to(device).eval()


def mask_at(spec: dict, consts: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """``consts`` with the landmark graph's last upsampling before its person mask (output MASK_OUTPUT) made
    ``size`` px square: the segmentation decoder's last stage (3x3 depthwise and 1x1 convolutions, stride 1) then
    runs at that resolution — at 128 px a sixth of the decoder's cost, its mask the full one's within 0.05 where
    it is read (docs/detect2d.md). GraphError if no upsampling feeds that output."""
    producer = {out: op for op in spec["ops"] for out in op["out"]}
    frontier = [spec["outputs"][MASK_OUTPUT]]
    while frontier:  # breadth first from the output: the first upsampling met is the last one computed
        op = producer.get(frontier.pop(0))
        if op is None:
            continue
        if op["op"] == "RESIZE_BILINEAR":
            shape = consts[op["in"][1]]
            return {**consts, op["in"][1]: torch.tensor([size, size], dtype=shape.dtype)}
        frontier += op["in"]
    raise GraphError(f"no RESIZE_BILINEAR feeds output {MASK_OUTPUT} of this graph")


def tasks_bundle() -> bytes:
    """A mediapipe Tasks ``pose_landmarker.task`` (zip) of the same two models, for the parity oracle and the
    benchmark. Needs mediapipe installed (its metadata writer adds the input normalization Tasks requires)."""
    import io

    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    def with_metadata(name: str, mean: float, std: float) -> bytes:
        writer = metadata_writer.MetadataWriter.create(find_tflite(name))
        writer.add_general_info(name, f"BlazePose {name} from mediapipe {MEDIAPIPE_VERSION}")
        writer.add_image_input(norm_mean=[mean], norm_std=[std])
        return writer.populate()[0]

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pose_detector.tflite", with_metadata("detector", 127.5, 127.5))  # input in [-1, 1]
        z.writestr("pose_landmarks_detector.tflite", with_metadata("landmark", 0.0, 255.0))  # input in [0, 1]
    return buf.getvalue()
