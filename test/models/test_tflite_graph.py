"""The TFLite-graph port reproduces a real TFLite interpreter's raw outputs on real inputs."""

import numpy as np
import pytest
import torch

from abspose.detect2d import crop_rois
from abspose.models import tflite_graph
from abspose.models.blazepose_weights import MODELS, find_tflite, load_graph, mask_at
from abspose.models.tflite_graph import GraphError, TFLiteGraph, _same_pad, parse_tflite

from conftest import TUE_FRAMES, data_path, read_rgb

tflite_runtime = pytest.importorskip("tflite_runtime.interpreter", reason="tflite-runtime (test extra) not installed")


def interpreter_outputs(name: str, x_nhwc: np.ndarray) -> list[np.ndarray]:
    it = tflite_runtime.Interpreter(model_content=find_tflite(name))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x_nhwc)
    it.invoke()
    order = {d["name"]: d["index"] for d in it.get_output_details()}
    return [it.get_tensor(order[n]) for n in sorted(order)]


def real_input(size: int) -> torch.Tensor:
    img = torch.from_numpy(read_rgb(data_path("rgbd", "tue_hero", "frames", f"{TUE_FRAMES[0]}_rgb.png")))
    img = img.permute(2, 0, 1).float()
    rois = torch.tensor([[320.0, 240.0, 640.0, 0.0]]) if size == 224 else torch.tensor([[330.0, 260.0, 520.0, 0.1]])
    return crop_rois(img, rois, size, "zeros")


@pytest.mark.parametrize(("name", "size", "scale"), [("detector", 224, (127.5, -1.0)), ("landmark", 256, (255.0, 0.0))])
def test_port_reproduces_the_tflite_interpreter(name, size, scale):
    x = real_input(size) / scale[0] + scale[1]
    graph = load_graph(name)
    with torch.inference_mode():
        ours = [t.permute(0, 2, 3, 1).numpy() if t.ndim == 4 else t.numpy() for t in graph(x)]
    ref = interpreter_outputs(name, x.permute(0, 2, 3, 1).contiguous().numpy())
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref, strict=True):
        assert o.shape == r.shape
        # float32 kernels differ in summation order only: errors far below the outputs' scale
        assert np.abs(o - r).max() <= 1e-3 * max(1.0, np.abs(r).max()), (name, np.abs(o - r).max())
    if name == "landmark":  # the landmarks in 256-px crop units
        assert np.abs(ours[0] - ref[0]).max() < 0.01


def test_pruning_drops_the_segmentation_head_but_keeps_outputs_equal():
    full = load_graph("landmark")
    pruned = load_graph("landmark", outputs=[0, 3])
    assert len(pruned._steps) < len(full._steps)
    x = real_input(256) / 255.0
    with torch.inference_mode():
        a, b = full(x), pruned(x)
    torch.testing.assert_close(b[0], a[0])
    torch.testing.assert_close(b[1], a[3])


def test_the_person_mask_at_half_size_is_the_full_mask_at_half_resolution():
    """The segmentation decoder's last upsampling made 128 px: the landmarks are untouched and the mask, on a real
    person's crop, is the 256-px one averaged over 2x2 pixels (measured: 0.006 apart on average, the same side of
    0.5 at 99.4 % of the pixels); a graph with no upsampling before that output is refused."""
    full, half = load_graph("landmark"), load_graph("landmark", mask_size=128)
    x = real_input(256) / 255.0
    with torch.inference_mode():
        a, b = full(x), half(x)
    for i in (0, 1, 3, 4):
        torch.testing.assert_close(b[i], a[i])
    assert a[2].shape == (1, 1, 256, 256) and b[2].shape == (1, 1, 128, 128)
    pooled = torch.nn.functional.avg_pool2d(torch.sigmoid(a[2]), 2)
    person = pooled > 0.5
    assert 0.05 < person.float().mean() < 0.8  # the crop holds a person and background
    assert (torch.sigmoid(b[2]) - pooled).abs().mean() < 0.02
    assert ((torch.sigmoid(b[2]) > 0.5) == person).float().mean() > 0.98
    spec = {"outputs": ["a", "b", "c"], "ops": [{"op": "CONV_2D", "in": ["x", "w"], "out": ["c"]}]}
    with pytest.raises(GraphError, match="no RESIZE_BILINEAR feeds output 2"):
        mask_at(spec, {}, 128)


def test_graphs_of_one_model_share_their_common_weights():
    """The whole landmark graph beside the pruned one (detect2d's person-mask check): sharing leaves one copy of
    the common weights, the segmentation decoder's own stay its own, and every output is unchanged; a graph of
    another model, whose weights of the same name differ in shape, is refused."""
    pruned, whole = load_graph("landmark", outputs=[0, 1, 3, 4]), load_graph("landmark")
    x = real_input(256) / 255.0
    with torch.inference_mode():
        before = whole(x)
        whole.share_parameters(pruned)
        after = whole(x)
    ptrs = {p.data_ptr() for p in pruned.parameters()}
    own = [p for p in whole.parameters() if p.data_ptr() not in ptrs]
    assert len(ptrs) == len(list(pruned.parameters())) and 0 < sum(p.numel() for p in own) < 10_000
    for a, b in zip(after, before, strict=True):
        assert torch.equal(a, b)
    odd = load_graph("landmark", outputs=[0])
    name = next(iter(odd._params))
    odd._params[name] = torch.nn.Parameter(torch.zeros(3), requires_grad=False)
    with pytest.raises(GraphError, match=f"cannot share parameter {name}"):
        odd.share_parameters(pruned)


def test_pads_before_convolutions_fold_into_them_with_the_same_outputs(monkeypatch):
    folded = load_graph("landmark", outputs=[0, 3])
    monkeypatch.setattr(tflite_graph, "_fold_pads", lambda ops, consts: ops)
    explicit = load_graph("landmark", outputs=[0, 3])
    # BlazePose's five spatial PADs (each before a stride-2 convolution) are gone: no padded copies
    assert len(explicit._steps) - len(folded._steps) == 5
    x = real_input(256) / 255.0
    with torch.inference_mode():
        for a, b in zip(folded(x), explicit(x), strict=True):
            assert torch.equal(a, b)


def test_same_padding_matches_tensorflow_rules():
    assert _same_pad(224, 3, 2, 1) == (0, 1)  # even input, stride 2: all padding after
    assert _same_pad(225, 3, 2, 1) == (1, 1)
    assert _same_pad(56, 5, 1, 1) == (2, 2)
    assert _same_pad(7, 1, 1, 1) == (0, 0)


def test_parse_reports_unsupported_ops_and_models():
    spec, consts = parse_tflite(find_tflite("detector"))
    assert {op["op"] for op in spec["ops"]} <= {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "ADD",
        "PAD",
        "RESHAPE",
        "CONCATENATION",
        "DEPTH_TO_SPACE",
        "RESIZE_BILINEAR",
    }
    assert sum(v.size for v in consts.values()) > 2_900_000  # ~2.97 M parameters, sparse ones densified
    spec["ops"][0]["op"] = "SOFTMAX"
    with pytest.raises(GraphError, match="op SOFTMAX is not supported"):
        TFLiteGraph(spec, {k: torch.from_numpy(v.astype(np.float32)) for k, v in consts.items()})
    assert set(MODELS) == {"detector", "landmark"}


def test_unsupported_resize_mode_is_a_clear_error():
    spec, consts = parse_tflite(find_tflite("landmark"))
    op = next(o for o in spec["ops"] if o["op"] == "RESIZE_BILINEAR")
    op["opt"]["half_pixel_centers"] = False
    with pytest.raises(GraphError, match="half_pixel_centers"):
        TFLiteGraph(spec, {k: torch.from_numpy(v.astype(np.float32)) for k, v in consts.items()})
