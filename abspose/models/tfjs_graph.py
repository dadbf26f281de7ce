"""Run a TF.js graph model in torch: parse ``model.json`` + its ``.bin`` once, execute with torch ops.

:func:`parse_tfjs` reads the GraphDef nodes and the weights manifest (float32, int32, and weights stored as
float16 or affine uint8), folds every node whose inputs are all constant (shape arithmetic, ONNX-export
leftovers such as ``SparseToDense``), drops what the chosen outputs do not need and returns a JSON-able
spec plus constant arrays; :class:`TFJSGraph` runs them on any torch device. Tensors keep TensorFlow's
logical layout (NHWC); convolutions and pools see NCHW views of it. Supported ops: `SUPPORTED_OPS`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from abspose.models.liveness import last_reads
from abspose.models.tflite_graph import GraphError, _same_pad

Step = Callable[[dict[str, torch.Tensor]], None]

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_TF_DTYPES = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int32, "DT_INT64": torch.int64, "DT_BOOL": torch.bool}


# --- parsing ------------------------------------------------------------------------------------------
def _attr(value: dict[str, Any]) -> Any:
    """One GraphDef attribute as a plain value (strings decoded from base64)."""
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        if "i" in items:
            return [int(i) for i in items["i"]]
        if "f" in items:
            return [float(f) for f in items["f"]]
        return []
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    return None


def _weights(manifest: list[dict[str, Any]], folder: Path) -> dict[str, np.ndarray]:
    """The weight tensors of a weights manifest, dequantized to float32 where stored quantized."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        try:
            data = b"".join((folder / p).read_bytes() for p in group["paths"])
        except OSError as exc:
            raise GraphError(f"{folder}: weight file of the manifest missing ({exc})") from exc
        pos = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = w.get("quantization")
            if quant is None:
                dtype = np.dtype(_DTYPES.get(w["dtype"], np.float32))
                if w["dtype"] not in _DTYPES:
                    raise GraphError(f"weight {w['name']}: dtype {w['dtype']} is not supported")
                values = np.frombuffer(data, dtype, count, pos).astype(dtype)
            elif quant["dtype"] == "float16":
                dtype = np.dtype(np.float16)
                values = np.frombuffer(data, dtype, count, pos).astype(np.float32)
            elif quant["dtype"] == "uint8":
                dtype = np.dtype(np.uint8)
                q = np.frombuffer(data, dtype, count, pos).astype(np.float32)
                values = q * np.float32(quant["scale"]) + np.float32(quant["min"])
            else:
                raise GraphError(f"weight {w['name']}: quantization {quant['dtype']} is not supported")
            pos += count * dtype.itemsize
            out[w["name"]] = values.reshape(shape)
        if pos != len(data):
            raise GraphError(f"{folder / group['paths'][0]}: {len(data)} bytes, the manifest describes {pos}")
    return out


def _ref(name: str) -> str:
    """A node input as a tensor key ``node:index``."""
    return name if ":" in name else name + ":0"


def parse_tfjs(model_json: str | Path, outputs: Sequence[str] | None = None) -> tuple[dict[str, Any], dict]:
    """Parse a TF.js graph model: (spec, constants). ``outputs``: tensor names to compute (default: the
    signature's outputs, in its order); nodes that feed none of them are dropped."""
    path = Path(model_json)
    try:
        model = json.loads(path.read_text())
        nodes_in = model["modelTopology"]["node"]
        manifest = model["weightsManifest"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GraphError(f"{path}: not a TF.js graph model ({exc})") from exc
    weights = _weights(manifest, path.parent)
    sig = model.get("signature", {})
    outs = [_ref(o) for o in (outputs or [v["name"] for v in sig.get("outputs", {}).values()])]
    nodes = {}
    for n in nodes_in:
        attrs = {k: _attr(v) for k, v in n.get("attr", {}).items()}
        ins = [_ref(i) for i in n.get("input", []) if not i.startswith("^")]
        nodes[n["name"]] = {"name": n["name"], "op": n["op"], "in": ins, "attr": attrs}
    consts = {k + ":0": torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    for name, n in nodes.items():
        if n["op"] == "Const" and name + ":0" not in consts:
            raise GraphError(f"{path}: constant {name} has no weights in the manifest")
    order = _topological(nodes, outs)
    inputs = [n["name"] + ":0" for n in nodes.values() if n["op"] == "Placeholder"]
    ops = []
    for name in order:
        n = nodes[name]
        if n["op"] in ("Const", "Placeholder"):
            continue
        if n["op"] not in SUPPORTED_OPS:
            raise GraphError(f"{path}: op {n['op']} ({name}) is not supported (supported: {', '.join(SUPPORTED_OPS)})")
        if all(i in consts for i in n["in"]):  # fold: run it once now on the constants
            env = dict(consts)
            _STEPS[n["op"]](n, _ConstView(consts))(env)
            consts.update({k: v for k, v in env.items() if k.startswith(name + ":")})
            continue
        ops.append(n)
    _fold_pads(ops, consts)
    ops = _fold_bias(ops, consts, outs)
    ops = _fold_activations(ops, outs)
    needed = set(outs)
    kept = []
    for n in reversed(ops):
        if any(k.split(":")[0] == n["name"] for k in needed):
            kept.append(n)
            needed |= set(n["in"])
    kept.reverse()
    for o in outs:
        if o not in consts and not any(o.split(":")[0] == n["name"] for n in kept) and o not in inputs:
            raise GraphError(f"{path}: output {o} is not in the graph")
    used_inputs = [i for i in inputs if i in needed]
    spec = {"inputs": used_inputs, "outputs": outs, "ops": kept}
    return spec, {k: v for k, v in consts.items() if k in needed}


def _readers(ops: list[dict]) -> dict[str, list[dict]]:
    """tensor name -> the ops that read it."""
    readers: dict[str, list[dict]] = {}
    for n in ops:
        for i in n["in"]:
            readers.setdefault(i, []).append(n)
    return readers


def _bypass(ops: list[dict], renamed: dict[str, str]) -> list[dict]:
    """``ops`` without the ops whose output ``renamed`` maps to another tensor, their readers reading that one."""
    dropped = {out.split(":")[0] for out in renamed}
    for n in ops:
        n["in"] = [renamed.get(i, i) for i in n["in"]]
    return [n for n in ops if n["name"] not in dropped]


def _fold_pads(ops: list[dict], consts: dict[str, torch.Tensor]) -> None:
    """Give convolutions and max pools the explicit spatial padding of a ``Pad`` before them (directly, or
    through an NCHW→NHWC ``Transpose``, as graphs exported from ONNX have it): no padded copy per layer."""
    by_name = {n["name"]: n for n in ops}
    readers = _readers(ops)
    for n in ops:
        if n["op"] not in _CONVS + ("MaxPool",) or n["attr"].get("padding") != "VALID":
            continue
        src = by_name.get(n["in"][0].split(":")[0])
        perm = [0, 1, 2, 3]
        via = None
        if src is not None and src["op"] == "Transpose" and len(readers[n["in"][0]]) == 1:
            perm_key = src["in"][1]
            if perm_key not in consts or consts[perm_key].tolist() != [0, 2, 3, 1]:
                continue
            via, perm = src, [0, 2, 3, 1]
            src = by_name.get(src["in"][0].split(":")[0])
        if src is None or src["op"] not in ("Pad", "PadV2") or len(readers.get(src["name"] + ":0", [])) != 1:
            continue
        if src["in"][1] not in consts or (src["op"] == "PadV2" and src["in"][2] not in consts):
            continue
        pads = consts[src["in"][1]].reshape(-1, 2).tolist()
        fill = float(consts[src["in"][2]]) if src["op"] == "PadV2" else 0.0
        wanted = float("-inf") if n["op"] == "MaxPool" else 0.0
        if len(pads) != 4 or fill != wanted:
            continue
        nhwc = [pads[a] for a in perm]  # the pads in the layout the conv sees
        if nhwc[0] != [0, 0] or nhwc[3] != [0, 0]:
            continue
        n["attr"]["padding"] = "EXPLICIT"
        n["attr"]["explicit_paddings"] = [0, 0, *nhwc[1], *nhwc[2], 0, 0]
        if via is not None:
            via["in"][0] = src["in"][0]  # transpose the unpadded tensor
        else:
            n["in"][0] = src["in"][0]


def _fold_bias(ops: list[dict], consts: dict[str, torch.Tensor], outs: list[str]) -> list[dict]:
    """``ops`` with each ``Add`` of a constant per-channel vector to a plain convolution's output (ONNX
    exports add the bias apart) made that convolution's own bias: one memory pass less per layer."""
    users = _readers(ops)
    renamed: dict[str, str] = {}
    for n in ops:
        if n["op"] not in ("Conv2D", "DepthwiseConv2dNative") or n["in"][1] not in consts:
            continue
        out = n["name"] + ":0"
        after = users.get(out, [])
        if len(after) != 1 or after[0]["op"] not in ("Add", "AddV2", "BiasAdd") or after[0]["name"] + ":0" in outs:
            continue
        add = after[0]
        bias = next((i for i in add["in"] if i != out), None)
        w = consts[n["in"][1]]
        channels = int(w.shape[3]) * (int(w.shape[2]) if n["op"] == "DepthwiseConv2dNative" else 1)
        if bias not in consts or consts[bias].numel() != channels or consts[bias].shape[-1] != channels:
            continue
        consts[bias + "/vector"] = consts[bias].reshape(channels)
        n["op"] = "_FusedConv2D" if n["op"] == "Conv2D" else "FusedDepthwiseConv2dNative"
        n["in"] = [*n["in"][:2], bias + "/vector"]
        n["attr"] = {**n["attr"], "fused_ops": ["BiasAdd"]}
        renamed[add["name"] + ":0"] = out
    return _bypass(ops, renamed)


# element-wise activations a convolution can apply in place to its own fresh output (``_activation``)
_FOLDABLE_ACTS = ("Relu", "Relu6", "LeakyRelu", "Sigmoid")


def _fold_activations(ops: list[dict], outs: list[str]) -> list[dict]:
    """``ops`` with each activation of a convolution's output — directly or through ``Transpose`` nodes (ONNX
    exports put one between NanoDet's bias and its LeakyRelu) whose outputs nothing else reads — applied by that
    convolution in place: no separate pass and no new tensor per layer. Element-wise ops commute with a
    transpose, so every output is the same."""
    by_name = {n["name"]: n for n in ops}
    users = _readers(ops)

    def only_user(tensor: str, node: dict) -> bool:
        return [u["name"] for u in users.get(tensor, [])] == [node["name"]] and tensor not in outs

    renamed: dict[str, str] = {}
    for act in ops:
        if act["op"] not in _FOLDABLE_ACTS or act["name"] + ":0" in outs:
            continue
        src, reader = act["in"][0], act
        while True:
            node = by_name.get(src.split(":")[0])
            if node is None or not only_user(src, reader) or node["op"] != "Transpose":
                break
            src, reader = node["in"][0], node
        conv = by_name.get(src.split(":")[0])
        if conv is None or not only_user(src, reader) or conv["op"] not in _CONVS:
            continue
        fused = conv["attr"].get("fused_ops", [])
        if fused != ["BiasAdd"]:
            continue  # a fused op after BiasAdd only (what TF.js fuses), one activation per convolution
        conv["attr"] = {**conv["attr"], "fused_ops": [*fused, act["op"]]}
        if act["op"] == "LeakyRelu":
            conv["attr"]["leakyrelu_alpha"] = float(act["attr"].get("alpha", 0.2))
        renamed[act["name"] + ":0"] = act["in"][0]
    return _bypass(ops, renamed)


def _topological(nodes: dict[str, dict], outs: list[str]) -> list[str]:
    """Node names in an order where every node comes after its inputs (only those the outputs need)."""
    order: list[str] = []
    state: dict[str, int] = {}
    stack = [(o.split(":")[0], False) for o in outs]
    while stack:
        name, done = stack.pop()
        if done:
            state[name] = 2
            order.append(name)
            continue
        if state.get(name):
            continue
        if name not in nodes:
            raise GraphError(f"tensor {name} is referenced but no node makes it")
        state[name] = 1
        stack.append((name, True))
        stack.extend((i.split(":")[0], False) for i in nodes[name]["in"] if not state.get(i.split(":")[0]))
    return order


class _ConstView:
    """What a step builder needs of the graph: constants by key (folding and building share builders)."""

    def __init__(self, consts: dict[str, torch.Tensor]):
        self.consts = consts

    def value(self, key: str) -> torch.Tensor:
        if key not in self.consts:
            raise GraphError(f"{key} must be a constant")
        return self.consts[key]

    def tensor(self, key: str) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        return lambda env: env[key]

    def converted(self, key: str, suffix: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
        value = fn(self.value(key))
        return lambda env: value


# --- op builders: node, graph -> step(env) ---------------------------------------------------------------
def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def _check_nhwc(n: dict) -> None:
    if n["attr"].get("data_format", "NHWC") != "NHWC":
        raise GraphError(f"{n['name']}: data_format {n['attr']['data_format']} is not supported (only NHWC)")


def _padding(n: dict, h: int, w: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int) -> tuple[int, ...]:
    """(left, right, top, bottom) for TF's VALID/SAME/EXPLICIT padding."""
    mode = n["attr"].get("padding", "VALID")
    if mode == "VALID":
        return (0, 0, 0, 0)
    if mode == "SAME":
        (t, b), (left, r) = _same_pad(h, kh, sh, dh), _same_pad(w, kw, sw, dw)
        return (left, r, t, b)
    if mode == "EXPLICIT":
        p = n["attr"].get("explicit_paddings", [])
        return (p[4], p[5], p[2], p[3])
    raise GraphError(f"{n['name']}: padding {mode} is not supported")


def _activation(n: dict, names: list[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation of a fused op's ``fused_ops`` after BiasAdd."""
    acts = [f for f in names if f not in ("BiasAdd", "FusedBatchNorm")]
    if not acts:
        return lambda y: y
    alpha = float(n["attr"].get("leakyrelu_alpha", 0.2))
    table: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "Relu": torch.relu_,
        "Relu6": lambda y: F.hardtanh_(y, 0.0, 6.0),
        "LeakyRelu": lambda y: F.leaky_relu_(y, alpha),
        "Sigmoid": torch.sigmoid_,
        "Elu": F.elu_,
    }
    if len(acts) > 1 or acts[0] not in table:
        raise GraphError(f"{n['name']}: fused ops {names} are not supported")
    return table[acts[0]]


def _conv(n: dict, g: Any) -> Step:
    _check_nhwc(n)
    depthwise = "Depthwise" in n["op"]
    a = n["attr"]
    w = g.value(n["in"][1])  # HWIO, or depthwise H, W, C, multiplier
    kh, kw = int(w.shape[0]), int(w.shape[1])
    if depthwise:
        groups = int(w.shape[2])
        w_t = w.permute(2, 3, 0, 1).reshape(groups * int(w.shape[3]), 1, kh, kw)
    else:
        groups = 1
        w_t = w.permute(3, 2, 0, 1)
    weight = g.converted(
        n["in"][1], "_dw" if depthwise else "_oihw", lambda _: w_t.float().contiguous(memory_format=torch.channels_last)
    )
    fused = a.get("fused_ops", [])
    if n["op"].startswith("_Fused") or n["op"].startswith("Fused"):
        if "BiasAdd" not in fused and fused:
            raise GraphError(f"{n['name']}: fused ops {fused} are not supported")
        bias = g.converted(n["in"][2], "_bias", lambda b: b.float()) if "BiasAdd" in fused else None
    else:
        bias = None
    act = _activation(n, fused)
    strides, dil = a.get("strides", [1, 1, 1, 1]), a.get("dilations", [1, 1, 1, 1])
    sh, sw, dh, dw = strides[1], strides[2], dil[1], dil[2]
    x_of, out = g.tensor(n["in"][0]), n["name"] + ":0"

    def step(env: dict[str, torch.Tensor]) -> None:
        x = _nchw(x_of(env)).contiguous(memory_format=torch.channels_last)
        left, right, top, bottom = _padding(n, x.shape[2], x.shape[3], kh, kw, sh, sw, dh, dw)
        inner = (top, left) if top == bottom and left == right else (0, 0)
        if inner == (0, 0) and any((left, right, top, bottom)):
            x = F.pad(x, (left, right, top, bottom))
        y = F.conv2d(x, weight(env), bias(env) if bias else None, (sh, sw), inner, (dh, dw), groups)
        env[out] = _nhwc(act(y))

    return step


def _pool(n: dict, g: Any) -> Step:
    _check_nhwc(n)
    k, s = n["attr"]["ksize"], n["attr"]["strides"]
    x_of, out = g.tensor(n["in"][0]), n["name"] + ":0"

    def step(env: dict[str, torch.Tensor]) -> None:
        x = _nchw(x_of(env)).contiguous(memory_format=torch.channels_last)
        left, right, top, bottom = _padding(n, x.shape[2], x.shape[3], k[1], k[2], s[1], s[2], 1, 1)
        inner = (top, left) if top == bottom <= k[1] // 2 and left == right <= k[2] // 2 else (0, 0)
        if inner == (0, 0) and any((left, right, top, bottom)):
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        env[out] = _nhwc(F.max_pool2d(x, (k[1], k[2]), (s[1], s[2]), inner))

    return step


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[dict, Any], Step]:
    def build(n: dict, g: Any) -> Step:
        a_of, b_of, out = g.tensor(n["in"][0]), g.tensor(n["in"][1]), n["name"] + ":0"

        def step(env: dict[str, torch.Tensor]) -> None:
            env[out] = fn(a_of(env), b_of(env))

        return step

    return build


def _unary(fn: Callable[[dict], Callable[[torch.Tensor], torch.Tensor]]) -> Callable[[dict, Any], Step]:
    def build(n: dict, g: Any) -> Step:
        f, x_of, out = fn(n), g.tensor(n["in"][0]), n["name"] + ":0"

        def step(env: dict[str, torch.Tensor]) -> None:
            env[out] = f(x_of(env))

        return step

    return build


def _pad(n: dict, g: Any) -> Step:
    pads = g.value(n["in"][1]).reshape(-1, 2).tolist()
    flat = tuple(int(v) for pair in reversed(pads) for v in pair)
    fill = float(g.value(n["in"][2])) if n["op"] == "PadV2" else 0.0
    return _unary(lambda _: lambda x: F.pad(x, flat, value=fill))(n, g)


def _resize(n: dict, g: Any) -> Step:
    size = tuple(int(v) for v in g.value(n["in"][1]).tolist())
    align, half = n["attr"].get("align_corners", False), n["attr"].get("half_pixel_centers", False)
    if not (align or half):
        raise GraphError(f"{n['name']}: ResizeBilinear without half_pixel_centers or align_corners is not supported")
    mode = "nearest" if n["op"] == "ResizeNearestNeighbor" else "bilinear"
    if mode == "nearest" and not half:
        raise GraphError(f"{n['name']}: ResizeNearestNeighbor needs half_pixel_centers")

    def resize(x: torch.Tensor) -> torch.Tensor:
        if mode == "nearest":
            return _nhwc(F.interpolate(_nchw(x), size=size, mode="nearest-exact"))
        return _nhwc(F.interpolate(_nchw(x), size=size, mode="bilinear", align_corners=bool(align)))

    return _unary(lambda _: resize)(n, g)


def _concat(n: dict, g: Any) -> Step:
    axis = int(g.value(n["in"][-1]))
    parts, out = [g.tensor(i) for i in n["in"][:-1]], n["name"] + ":0"

    def step(env: dict[str, torch.Tensor]) -> None:
        env[out] = torch.cat([p(env) for p in parts], dim=axis)

    return step


def _split(n: dict, g: Any) -> Step:
    sizes = [int(s) for s in g.value(n["in"][1]).tolist()]
    axis = int(g.value(n["in"][2]))
    x_of, name = g.tensor(n["in"][0]), n["name"]

    def step(env: dict[str, torch.Tensor]) -> None:
        x = x_of(env)
        if -1 in sizes:
            known = sum(s for s in sizes if s >= 0)
            parts = torch.split(x, [s if s >= 0 else x.shape[axis] - known for s in sizes], dim=axis)
        else:
            parts = torch.split(x, sizes, dim=axis)
        for i, p in enumerate(parts):
            env[f"{name}:{i}"] = p

    return step


def _reshape(n: dict, g: Any) -> Step:
    shape = [int(s) for s in g.value(n["in"][1]).tolist()]

    def reshape(x: torch.Tensor) -> torch.Tensor:
        # a leading batch dimension follows the input's (graphs are exported for batch 1)
        target = [x.shape[0], *shape[1:]] if shape and shape[0] == 1 and x.shape[0] != 1 else shape
        return x.reshape(target)

    return _unary(lambda _: reshape)(n, g)


def _transpose(n: dict, g: Any) -> Step:
    perm = [int(p) for p in g.value(n["in"][1]).tolist()]
    return _unary(lambda _: lambda x: x.permute(perm))(n, g)


def _mean(n: dict, g: Any) -> Step:
    axes = [int(a) for a in g.value(n["in"][1]).reshape(-1).tolist()]
    keep = bool(n["attr"].get("keep_dims", False))
    return _unary(lambda _: lambda x: x.mean(dim=axes, keepdim=keep))(n, g)


def _sparse_to_dense(n: dict, g: Any) -> Step:
    idx, shape, values, default = (g.value(i) for i in n["in"])
    out = torch.full([int(s) for s in shape.reshape(-1).tolist()], default.item(), dtype=values.dtype)
    if idx.numel():
        out[tuple(idx.long().reshape(len(idx), -1).T)] = values
    key = n["name"] + ":0"

    def step(env: dict[str, torch.Tensor]) -> None:
        env[key] = out

    return step


def _identity(n: dict, g: Any) -> Step:
    return _unary(lambda _: lambda x: x)(n, g)


def _cast(n: dict, g: Any) -> Step:
    dtype = _TF_DTYPES.get(n["attr"].get("DstT", "DT_FLOAT"))
    if dtype is None:
        raise GraphError(f"{n['name']}: Cast to {n['attr'].get('DstT')} is not supported")
    return _unary(lambda _: lambda x: x.to(dtype))(n, g)


_CONVS = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
_STEPS: dict[str, Callable[[dict, Any], Step]] = {
    "Identity": _identity,
    "Conv2D": _conv,
    "_FusedConv2D": _conv,
    "DepthwiseConv2dNative": _conv,
    "FusedDepthwiseConv2dNative": _conv,
    "MaxPool": _pool,
    "Add": _binary(torch.add),
    "AddV2": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "RealDiv": _binary(torch.div),
    "Maximum": _binary(torch.maximum),
    "Minimum": _binary(torch.minimum),
    "Relu": _unary(lambda n: torch.relu),
    "Relu6": _unary(lambda n: lambda x: F.hardtanh(x, 0.0, 6.0)),
    "LeakyRelu": _unary(lambda n: lambda x: F.leaky_relu(x, float(n["attr"].get("alpha", 0.2)))),
    "Sigmoid": _unary(lambda n: torch.sigmoid),
    "Tanh": _unary(lambda n: torch.tanh),
    "Pad": _pad,
    "PadV2": _pad,
    "ResizeBilinear": _resize,
    "ResizeNearestNeighbor": _resize,
    "ConcatV2": _concat,
    "SplitV": _split,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Mean": _mean,
    "Cast": _cast,
    "SparseToDense": _sparse_to_dense,
}
SUPPORTED_OPS = tuple(_STEPS)


class TFJSGraph(nn.Module):
    """A parsed TF.js graph as a torch module: ``forward(*inputs)`` takes the graph's inputs in TF layout (NHWC
    images, or whatever the graph's placeholders are) and returns the spec's outputs, in its order."""

    def __init__(self, spec: dict[str, Any], consts: dict[str, torch.Tensor]):
        super().__init__()
        self.input_ids = list(spec["inputs"])
        self.output_ids = list(spec["outputs"])
        self._consts = consts
        self._keys: dict[str, str] = {}
        self._steps: list[Step] = []
        for n in spec["ops"]:
            if n["op"] not in _STEPS:  # a spec read from a file can name anything
                raise GraphError(f"op {n['op']} is not supported (supported: {', '.join(SUPPORTED_OPS)})")
            self._steps.append(_STEPS[n["op"]](n, self))
        self._out_consts = {o: self.converted(o, "", lambda v: v) for o in self.output_ids if o in consts}
        # names each step reads last (dropped after it: the allocator reuses their memory)
        self._dead = last_reads([n["in"] for n in spec["ops"]], set(self.output_ids) | consts.keys())
        del self._consts  # what the steps need now lives in buffers

    def _buffer(self, key: str, value: torch.Tensor) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        if key not in self._keys:
            self._keys[key] = f"c{len(self._keys)}"
            dense = value.is_contiguous() or value.is_contiguous(memory_format=torch.channels_last)
            self.register_buffer(self._keys[key], value if dense else value.contiguous(), persistent=False)
        name = self._keys[key]
        return lambda env: getattr(self, name)

    # the graph interface the step builders use
    def value(self, key: str) -> torch.Tensor:
        if key not in self._consts:
            raise GraphError(f"{key} must be a constant")
        return self._consts[key]

    def tensor(self, key: str) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        if key in self._consts:
            return self._buffer(key, self._consts[key])
        return lambda env: env[key]

    def converted(self, key: str, suffix: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
        return self._buffer(key + suffix, fn(self.value(key)))

    def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if len(inputs) != len(self.input_ids):
            raise GraphError(f"the graph takes {len(self.input_ids)} inputs, got {len(inputs)}")
        env = dict(zip(self.input_ids, inputs, strict=True))
        for step, dead in zip(self._steps, self._dead, strict=True):
            step(env)
            for name in dead:
                del env[name]
        return [self._out_consts[o](env) if o in self._out_consts else env[o] for o in self.output_ids]
