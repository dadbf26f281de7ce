"""Run a TFLite float graph in torch: parse once (``tflite`` flatbuffers), execute with torch ops.

:func:`parse_tflite` turns a ``.tflite`` file into a JSON-able graph spec plus constant tensors, folding
the weight-side ``DENSIFY`` (TFLite sparsity, CSR) and ``DEQUANTIZE`` (float16 storage) ops away. The
spec and constants are what we save as safetensors; :class:`TFLiteGraph` runs them without TensorFlow or
a TFLite runtime; a zero PAD before a convolution becomes the convolution's padding. Activations are
NCHW-shaped and stored channels-last (NHWC memory, as TFLite's, which is what oneDNN and cuDNN run
fastest); 4D outputs are returned NCHW-shaped, others as in TFLite.
Supported ops are those of BlazePose's detector and landmark models (`SUPPORTED_OPS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from abspose.models.liveness import last_reads

SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "ADD",
    "PAD",
    "RESHAPE",
    "CONCATENATION",
    "DEPTH_TO_SPACE",
    "RESIZE_BILINEAR",
    "MAX_POOL_2D",
    "LOGISTIC",
)
_FOLDED_OPS = ("DEQUANTIZE", "DENSIFY")
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}


class GraphError(ValueError):
    """A TFLite graph that cannot be parsed or run (unsupported op, sparsity format, …)."""


# --- parsing (needs the `tflite` package; only at conversion time) ------------------------------------
def _densify(values: np.ndarray, shape: Sequence[int], sparsity: Any) -> np.ndarray:
    """Dense array from TFLite sparse storage: dense leading dims, CSR on the last one (BlazePose's case)."""
    import tflite

    order = sparsity.TraversalOrderAsNumpy()
    if sparsity.BlockMapLength() or list(order) != list(range(len(shape))):
        raise GraphError(f"unsupported sparsity: traversal {order}, block map {sparsity.BlockMapAsNumpy()}")
    dims = [sparsity.DimMetadata(i) for i in range(sparsity.DimMetadataLength())]
    if any(d.Format() != 0 for d in dims[:-1]) or dims[-1].Format() != 1:
        raise GraphError("unsupported sparsity: only dense leading dimensions with CSR on the last are implemented")

    def vector(table: Any, kind: int) -> np.ndarray:
        cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
        vec = cls()
        vec.Init(table.Bytes, table.Pos)
        return vec.ValuesAsNumpy().astype(np.int64)

    last = dims[-1]
    segments = vector(last.ArraySegments(), last.ArraySegmentsType())
    indices = vector(last.ArrayIndices(), last.ArrayIndicesType())
    rows = int(np.prod(shape[:-1]))
    dense = np.zeros((rows, shape[-1]), dtype=values.dtype)
    row_of = np.repeat(np.arange(rows), np.diff(segments))
    dense[row_of, indices] = values[: len(indices)]
    return dense.reshape(shape)


def _options(op: Any, name: str) -> dict[str, Any]:
    """The builtin options of one operator as a plain dict."""
    import tflite

    table = op.BuiltinOptions()
    cls = {
        "CONV_2D": tflite.Conv2DOptions,
        "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "ADD": tflite.AddOptions,
        "CONCATENATION": tflite.ConcatenationOptions,
        "DEPTH_TO_SPACE": tflite.DepthToSpaceOptions,
        "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
        "MAX_POOL_2D": tflite.Pool2DOptions,
    }.get(name)
    if cls is None or table is None:
        return {}
    o = cls()
    o.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for key, getter in (
        ("padding", "Padding"),
        ("stride_w", "StrideW"),
        ("stride_h", "StrideH"),
        ("dilation_w", "DilationWFactor"),
        ("dilation_h", "DilationHFactor"),
        ("activation", "FusedActivationFunction"),
        ("axis", "Axis"),
        ("block_size", "BlockSize"),
        ("align_corners", "AlignCorners"),
        ("half_pixel_centers", "HalfPixelCenters"),
        ("filter_w", "FilterWidth"),
        ("filter_h", "FilterHeight"),
        ("depth_multiplier", "DepthMultiplier"),
    ):
        if hasattr(o, getter):
            out[key] = getattr(o, getter)()
            if isinstance(out[key], bool | np.bool_):
                out[key] = bool(out[key])
    return out


def parse_tflite(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse a float TFLite model: (spec, constants). Tensor ids are strings of TFLite tensor indices."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise GraphError(f"expected one subgraph, found {model.SubgraphsLength()}")
    g = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        codes.append(names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "UNKNOWN"))
    consts: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    for t in range(g.TensorsLength()):
        tensor = g.Tensors(t)
        shapes[str(t)] = tensor.ShapeAsNumpy().tolist() if tensor.ShapeLength() else []
        buf = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(buf, np.ndarray) and buf.size:
            dtype = _NUMPY_TYPES.get(tensor.Type())
            if dtype is None:
                raise GraphError(f"tensor {tensor.Name()!r}: unsupported type {tensor.Type()}")
            values = np.frombuffer(buf.tobytes(), dtype=dtype)
            if tensor.Sparsity() is not None:
                consts[str(t)] = _densify(values, shapes[str(t)], tensor.Sparsity())
            else:
                consts[str(t)] = values.reshape(shapes[str(t)]).copy()
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        name = codes[op.OpcodeIndex()]
        ins = [str(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
        outs = [str(op.Outputs(j)) for j in range(op.OutputsLength())]
        if name in _FOLDED_OPS:
            if ins[0] not in consts:
                raise GraphError(f"op {i} {name} has a non-constant input: only weight-side {name} is supported")
            consts[outs[0]] = consts[ins[0]]  # DENSIFY done at load; DEQUANTIZE: float16 kept, cast when run
            continue
        if name not in SUPPORTED_OPS:
            raise GraphError(f"op {i}: {name} is not supported (supported: {', '.join(SUPPORTED_OPS)})")
        ops.append({"op": name, "in": ins, "out": outs, "opt": _options(op, name)})
    used = {t for o in ops for t in o["in"]}
    consts = {k: v for k, v in consts.items() if k in used}
    spec = {
        "inputs": [str(g.Inputs(i)) for i in range(g.InputsLength())],
        "outputs": [str(g.Outputs(i)) for i in range(g.OutputsLength())],
        "output_names": [g.Tensors(g.Outputs(i)).Name().decode() for i in range(g.OutputsLength())],
        "shapes": shapes,
        "ops": ops,
    }
    return spec, consts


# --- execution in torch ------------------------------------------------------------------------------
def _activation(code: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    # in place: the activation always follows the op that produced a fresh tensor
    acts = {
        0: None,
        1: torch.relu_,
        2: lambda x: x.clamp_(-1.0, 1.0),
        3: lambda x: F.hardtanh_(x, 0.0, 6.0),
        4: torch.tanh_,
    }
    if code not in acts:
        raise GraphError(f"fused activation {code} is not supported")
    return acts[code]


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite SAME padding (before, after) for one spatial dimension."""
    out = -(-size // stride)
    eff = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _fold_pads(ops: list[dict], consts: dict[str, torch.Tensor]) -> list[dict]:
    """``ops`` with each zero PAD of H and W only that feeds one VALID convolution alone turned into that
    convolution's own padding (BlazePose pads before its stride-2 convolutions): no padded copy per layer."""
    consumers: dict[str, list[int]] = {}
    for k, op in enumerate(ops):
        for i in op["in"]:
            consumers.setdefault(i, []).append(k)
    ops = list(ops)
    for k, op in enumerate(ops):
        users = consumers.get(op["out"][0], [])
        if op["op"] != "PAD" or op["in"][1] not in consts or len(users) != 1:
            continue
        conv = ops[users[0]]
        pads = consts[op["in"][1]].reshape(-1, 2).tolist()
        if conv["op"] not in ("CONV_2D", "DEPTHWISE_CONV_2D") or conv["opt"].get("padding", 1) != 1:
            continue
        if len(pads) != 4 or pads[0] != [0, 0] or pads[3] != [0, 0] or conv["in"][0] != op["out"][0]:
            continue
        (t, b), (left, r) = pads[1], pads[2]
        opt = {**conv["opt"], "folded_pad": (t, b, left, r)}
        ops[users[0]] = {**conv, "in": [op["in"][0], *conv["in"][1:]], "opt": opt}
        ops[k] = None
    return [op for op in ops if op is not None]


class TFLiteGraph(nn.Module):
    """A parsed TFLite graph as a torch module. ``forward(x)`` takes NCHW float input [B,C,H,W].

    ``outputs`` selects (by index into the TFLite outputs) what to compute; ops that feed none of them are
    dropped, e.g. BlazePose's segmentation head when only landmarks are wanted.
    """

    def __init__(self, spec: dict[str, Any], consts: dict[str, torch.Tensor], outputs: Sequence[int] | None = None):
        super().__init__()
        self.output_ids = [
            spec["outputs"][i] for i in (outputs if outputs is not None else range(len(spec["outputs"])))
        ]
        self.input_id = spec["inputs"][0]
        self.shapes = {k: list(v) for k, v in spec["shapes"].items()}
        needed = set(self.output_ids)
        ops = []
        for op in reversed(spec["ops"]):  # dead-code elimination from the selected outputs
            if needed & set(op["out"]):
                ops.append(op)
                needed |= set(op["in"])
        ops.reverse()
        ops = _fold_pads(ops, consts)
        # names each step reads last (dropped after it: the allocator reuses their memory)
        self._dead = last_reads([op["in"] for op in ops], set(self.output_ids) | consts.keys())
        self._params = nn.ParameterDict()
        self._steps: list[Callable[[dict[str, torch.Tensor]], None]] = []
        for op in ops:
            if op["op"] not in SUPPORTED_OPS:  # a spec read from a file can name anything
                raise GraphError(f"op {op['op']} is not supported (supported: {', '.join(SUPPORTED_OPS)})")
            self._steps.append(getattr(self, "_build_" + op["op"].lower())(op, consts))

    def share_parameters(self, other: TFLiteGraph) -> TFLiteGraph:
        """Use ``other``'s parameter wherever this graph has one of the same name — two graphs of one model file
        pruned to different outputs then hold one copy of their common weights (the steps look parameters up by
        name at each call). Returns self."""
        for name in self._params.keys() & other._params.keys():
            if self._params[name].shape != other._params[name].shape:
                raise GraphError(
                    f"cannot share parameter {name}: shapes {tuple(self._params[name].shape)} and "
                    f"{tuple(other._params[name].shape)} differ (not the same model)"
                )
            self._params[name] = other._params[name]
        return self

    # each builder returns a closure env -> None that writes its output into env
    def _const(self, key: str, value: torch.Tensor) -> str:
        name = "t" + key.replace(".", "_")
        if name not in self._params:
            fmt = torch.channels_last if value.dim() == 4 else torch.contiguous_format
            value = value.float().contiguous(memory_format=fmt)
            self._params[name] = nn.Parameter(value, requires_grad=False)
        return name

    def _build_conv_2d(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        return self._conv(op, consts, depthwise=False)

    def _build_depthwise_conv_2d(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        return self._conv(op, consts, depthwise=True)

    def _conv(self, op: dict, consts: dict[str, torch.Tensor], depthwise: bool) -> Callable:
        o = op["opt"]
        x_id, w_id = op["in"][0], op["in"][1]
        w = consts[w_id]
        # TFLite: conv [O,H,W,I], depthwise [1,H,W,C*M]  ->  torch [O,I,H,W] / [C*M,1,H,W]
        w = w.permute(3, 0, 1, 2) if depthwise else w.permute(0, 3, 1, 2)
        bname = self._const(op["in"][2], consts[op["in"][2]]) if len(op["in"]) > 2 else None
        kh, kw = w.shape[2], w.shape[3]
        sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
        groups = self.shapes[x_id][3] if depthwise else 1
        act = _activation(o.get("activation", 0))
        out_id = op["out"][0]
        params = self._params
        if (kh, kw, sh, sw, groups) == (1, 1, 1, 1, 1):  # pointwise: a matrix product over NHWC memory
            fc = self._const(w_id + "_fc", w.reshape(w.shape[0], w.shape[1]).contiguous())

            def pointwise(env: dict[str, torch.Tensor]) -> None:
                y = F.linear(env[x_id].permute(0, 2, 3, 1), params[fc], params[bname] if bname else None)
                env[out_id] = act(y.permute(0, 3, 1, 2)) if act else y.permute(0, 3, 1, 2)

            return pointwise
        wname = self._const(w_id + ("_dw" if depthwise else "_conv"), w)
        dh, dw = o.get("dilation_h", 1), o.get("dilation_w", 1)
        h, wd = self.shapes[x_id][1], self.shapes[x_id][2]
        if o.get("padding", 1) == 0:  # SAME
            (pt, pb), (pl, pr) = _same_pad(h, kh, sh, dh), _same_pad(wd, kw, sw, dw)
        else:  # VALID, or the spatial padding of a PAD folded into it
            pt, pb, pl, pr = o.get("folded_pad", (0, 0, 0, 0))
        symmetric = pt == pb and pl == pr

        def step(env: dict[str, torch.Tensor]) -> None:
            x = env[x_id]
            if not symmetric:
                x = F.pad(x, (pl, pr, pt, pb))
            y = F.conv2d(
                x,
                params[wname],
                params[bname] if bname else None,
                stride=(sh, sw),
                padding=(pt, pl) if symmetric else 0,
                dilation=(dh, dw),
                groups=groups,
            )
            env[out_id] = act(y) if act else y

        return step

    def _build_add(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        a, b = op["in"]
        act = _activation(op["opt"].get("activation", 0))
        out_id = op["out"][0]

        def step(env: dict[str, torch.Tensor]) -> None:
            y = env[a] + env[b]
            env[out_id] = act(y) if act else y

        return step

    def _build_pad(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        pads = consts[op["in"][1]].reshape(-1, 2).tolist()
        x_id, out_id = op["in"][0], op["out"][0]
        if len(pads) != 4 or pads[0] != [0, 0]:
            raise GraphError(f"PAD {pads}: only 4D padding of H, W and C is supported")
        (t, b), (left, r), (c0, c1) = pads[1], pads[2], pads[3]
        torch_pad = (left, r, t, b, c0, c1)

        def step(env: dict[str, torch.Tensor]) -> None:
            env[out_id] = F.pad(env[x_id], torch_pad)

        return step

    def _build_reshape(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        x_id, out_id = op["in"][0], op["out"][0]
        target = list(self.shapes[out_id])
        four_d = len(self.shapes[x_id]) == 4

        def step(env: dict[str, torch.Tensor]) -> None:
            x = env[x_id]
            if four_d:
                x = x.permute(0, 2, 3, 1)  # back to NHWC element order
            env[out_id] = x.reshape(x.shape[0], *target[1:])

        return step

    def _build_concatenation(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        ins, out_id = op["in"], op["out"][0]
        rank = len(self.shapes[out_id])
        axis = op["opt"].get("axis", 0) % rank
        if rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]

        def step(env: dict[str, torch.Tensor]) -> None:
            env[out_id] = torch.cat([env[i] for i in ins], dim=axis)

        return step

    def _build_depth_to_space(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        r = op["opt"]["block_size"]
        x_id, out_id = op["in"][0], op["out"][0]

        def step(env: dict[str, torch.Tensor]) -> None:
            x = env[x_id]
            b, c, h, w = x.shape
            # TF order: channel index = (i*r + j)*C_out + c
            x = x.view(b, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2)
            env[out_id] = x.reshape(b, c // (r * r), h * r, w * r)

        return step

    def _build_resize_bilinear(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        o = op["opt"]
        if o.get("align_corners") or not o.get("half_pixel_centers"):
            raise GraphError("RESIZE_BILINEAR: only half_pixel_centers=True, align_corners=False is implemented")
        size = tuple(int(v) for v in consts[op["in"][1]].tolist())
        x_id, out_id = op["in"][0], op["out"][0]

        def step(env: dict[str, torch.Tensor]) -> None:
            env[out_id] = F.interpolate(env[x_id], size=size, mode="bilinear", align_corners=False)

        return step

    def _build_max_pool_2d(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        o = op["opt"]
        x_id, out_id = op["in"][0], op["out"][0]
        kh, kw, sh, sw = o["filter_h"], o["filter_w"], o["stride_h"], o["stride_w"]
        h, w = self.shapes[x_id][1], self.shapes[x_id][2]
        if o.get("padding", 1) == 0:
            (pt, pb), (pl, pr) = _same_pad(h, kh, sh, 1), _same_pad(w, kw, sw, 1)
        else:
            pt = pb = pl = pr = 0
        act = _activation(o.get("activation", 0))

        def step(env: dict[str, torch.Tensor]) -> None:
            x = env[x_id]
            if pt or pb or pl or pr:
                x = F.pad(x, (pl, pr, pt, pb), value=float("-inf"))
            y = F.max_pool2d(x, (kh, kw), (sh, sw))
            env[out_id] = act(y) if act else y

        return step

    def _build_logistic(self, op: dict, consts: dict[str, torch.Tensor]) -> Callable:
        x_id, out_id = op["in"][0], op["out"][0]

        def step(env: dict[str, torch.Tensor]) -> None:
            env[out_id] = torch.sigmoid(env[x_id])

        return step

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        env = {self.input_id: x.contiguous(memory_format=torch.channels_last)}
        for step, dead in zip(self._steps, self._dead, strict=True):
            step(env)
            for name in dead:
                del env[name]
        return [env[i] for i in self.output_ids]
