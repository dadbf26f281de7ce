"""The graph runtimes drop each intermediate tensor after its last reader, and compute the same outputs."""

from __future__ import annotations

import pytest
import torch

from abspose.models import blazepose_weights, human_models
from abspose.models.liveness import last_reads


def test_each_name_dies_at_its_last_reader_unless_kept():
    reads = [["x", "w"], ["a", "x"], ["a", "b", "w"], ["c"]]
    assert last_reads(reads, keep={"w", "c"}) == [[], ["x"], ["a", "b"], []]
    assert last_reads([["x", "x"]], keep=()) == [["x"]]  # a name read twice by one step dies once


def _peak_and_outputs(graph, x: torch.Tensor, dead: list[list[str]]) -> tuple[int, list[torch.Tensor]]:
    """The most tensors the graph's name table held at once running ``x`` with these dead lists, and its outputs."""
    peak = 0
    steps = graph._steps

    def counting(step):
        def run(env):
            nonlocal peak
            step(env)
            peak = max(peak, len(env))

        return run

    kept = graph._dead
    graph._steps, graph._dead = [counting(s) for s in steps], dead
    try:
        with torch.inference_mode():
            out = graph(x)
    finally:
        graph._steps, graph._dead = steps, kept
    return peak, out


@pytest.mark.parametrize(
    ("load", "shape"),
    [
        (lambda: blazepose_weights.load_graph("landmark"), (2, 3, 256, 256)),  # TFLite
        (lambda: human_models.load_graph("nanodet"), (1, 3, 416, 416)),  # TF.js
    ],
    ids=["tflite_landmark", "tfjs_nanodet"],
)
def test_a_real_graph_holds_few_tensors_at_once_and_computes_the_same(load, shape):
    graph = load()
    dead = graph._dead
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    peak, out = _peak_and_outputs(graph, x, dead)
    peak_kept, out_kept = _peak_and_outputs(graph, x, [[] for _ in dead])
    assert peak_kept > len(graph._steps) // 2  # without the dead lists every output stays to the end
    assert peak <= 12 < len(graph._steps) // 4, peak  # with them, only what later steps still read
    for a, b in zip(out, out_kept, strict=True):
        assert torch.equal(a, b)
