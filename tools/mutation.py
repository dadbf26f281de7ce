#!/usr/bin/env python3
"""Mutation testing of the package (the per-frame runtime, the message layer and the runner, the model
importers, the training and evaluation tools, the CLIs): seeded one-line bugs, each run against the tests
of its module (``TARGETS``); prints the kill rate per module and the survivors.

    python tools/mutation.py                 # every module, 15 mutants each (~30 min on 2 cores)
    python tools/mutation.py --per-module 0  # every mutant there is
    python tools/mutation.py --only track --jobs 1

Mutants are made in function bodies only: a comparison flipped (< <=, == !=, in / not in, is / is not),
arithmetic swapped (+ -, * /), `and`/`or` swapped, a `not` dropped, a number changed (n -> n + 1, 0 <-> 1), a
boolean constant negated, a `return X` made `return None`. Each mutant runs in a private copy of the tree;
a test run that fails or exceeds the timeout kills it. A survivor is a line whose breakage no test of that
module notices (or an equivalent mutant: the listing says where, so a person can judge).
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# module -> the tests that own it (the fast subset that must notice its breakage)
TARGETS: dict[str, list[str]] = {
    "abspose/ros/outputs.py": ["test/ros/test_outputs.py", "test/ros/test_processor.py", "test/ros/test_parameters.py"],
    "abspose/ros/processor.py": [
        "test/ros/test_processor.py",
        "test/ros/test_parameters.py",
        "test/test_body_scale.py",
        "test/ros/test_node_core.py::test_diagnostics_count_the_dark_frames_the_detector_stretched",
    ],
    "abspose/ros/config.py": ["test/ros/test_config.py", "test/ros/test_parameters.py", "test/ros/test_node_core.py"],
    "abspose/ros/inputs.py": ["test/ros/test_inputs.py", "test/ros/test_processor.py"],
    "abspose/ros/sync.py": ["test/ros/test_sync.py", "test/ros/test_node_core.py"],
    "abspose/ros/throttle.py": ["test/ros/test_throttle.py", "test/ros/test_node_core.py"],
    "abspose/ros/node_core.py": [
        "test/ros/test_node_core.py",
        "test/ros/test_parameters.py",
        "test/ros/test_preflight.py",
    ],
    "abspose/track.py": ["test/test_track.py", "test/ros/test_processor.py", "test/test_body_scale.py"],
    "abspose/smoothing.py": ["test/test_smoothing.py", "test/test_track.py"],
    "abspose/fuse.py": ["test/test_fuse.py", "test/ros/test_processor.py"],
    "abspose/ground.py": ["test/test_ground.py", "test/test_body_scale.py"],
    "abspose/body_scale.py": ["test/test_body_scale.py", "test/test_ground.py"],
    "abspose/camera.py": ["test/test_camera.py", "test/test_depth.py"],
    "abspose/depth.py": ["test/test_depth.py", "test/test_fuse.py", "test/test_surface.py"],
    "abspose/surface.py": ["test/test_surface.py", "test/test_fuse.py"],
    "abspose/body_frame.py": ["test/test_body_frame.py"],
    "abspose/lifter.py": ["test/test_lifter.py", "test/test_fuse.py"],
    "abspose/skeleton.py": ["test/test_skeleton.py", "test/test_surface.py", "test/ros/test_messages.py"],
    "abspose/image.py": ["test/test_image.py", "test/ros/test_inputs.py"],
    "abspose/ros/messages.py": ["test/ros/test_messages.py", "test/ros/test_outputs.py"],
    "abspose/ros/tf_store.py": ["test/ros/test_tf_store.py"],
    "abspose/person_detector.py": ["test/test_person_detector.py", "test/training/test_people_recall.py"],
    "abspose/detect2d.py": [
        "test/test_detect2d.py",
        "test/training/test_people_recall.py",
        "test/test_person_detector.py::test_people_lying_or_turned_get_the_skeleton_they_have_upright",
        "test/test_person_detector.py::test_a_box_at_least_orient_aspect_as_wide_as_tall_is_looked_at_for_a_turn",
        "test/ros/test_node_core.py::test_diagnostics_count_the_dark_frames_the_detector_stretched",
    ],
    "abspose/pipeline.py": ["test/test_pipeline_real.py", "test/ros/test_processor.py"],
    "abspose/models/tfjs_graph.py": [
        "test/models/test_tfjs_graph.py",
        "test/models/test_human_models.py",
        "test/models/test_liveness.py",
    ],
    "abspose/models/liveness.py": ["test/models/test_liveness.py"],
    "abspose/models/tflite_graph.py": [
        "test/models/test_tflite_graph.py",
        "test/test_detect2d.py",
        "test/models/test_liveness.py",
    ],
    "abspose/ros/runner.py": ["test/ros/test_runner.py", "test/ros/test_tf_store.py"],
    "abspose/ros/preflight.py": ["test/ros/test_preflight.py"],
    "abspose/training/synth.py": ["test/training/test_synth.py", "test/training/test_stature.py"],
    "abspose/training/noise2d.py": ["test/training/test_noise2d.py", "test/training/test_dataset.py"],
    "abspose/training/postures.py": ["test/training/test_postures.py"],
    "abspose/training/scenes.py": ["test/training/test_scenes.py", "test/training/test_dataset.py"],
    "abspose/training/render.py": ["test/training/test_render.py", "test/training/test_dataset.py"],
    "abspose/training/mocap.py": ["test/training/test_mocap.py"],
    "abspose/training/dataset.py": ["test/training/test_dataset.py"],
    "abspose/training/metrics.py": ["test/training/test_metrics.py"],
    "abspose/training/baseline.py": ["test/training/test_baseline.py"],
    "abspose/training/stature.py": ["test/training/test_stature.py", "test/training/test_synth.py"],
    "abspose/training/evaluate.py": ["test/training/test_evaluate.py", "test/training/test_postures.py"],
    "abspose/overlay.py": ["test/test_overlay.py"],
    "abspose/models/human_models.py": ["test/models/test_human_models.py"],
    "abspose/detect_cli.py": ["test/test_detect_cli.py"],
    "abspose/cli.py": [
        "test/test_cli.py",
        "test/test_detect_cli.py",
        "test/ros/test_runner.py::test_cli_errors_name_the_file",
    ],
    "abspose/training/train.py": ["test/training/test_train.py"],
    "abspose/training/people_recall.py": ["test/training/test_people_recall.py"],
    "abspose/training/lifter_cli.py": ["test/training/test_lifter_cli.py"],
    "abspose/ros/run_cli.py": [
        "test/ros/test_run_cli.py",
        "test/ros/test_runner.py",
        "test/ros/test_hostile_files.py",
        "test/test_cli.py",
    ],
    "abspose/models/blazepose_weights.py": [
        "test/models/test_blazepose_weights.py",
        "test/models/test_tflite_graph.py",
        "test/ros/test_preflight.py",
        "test/test_detect2d.py::test_multi_person_parity_with_mediapipe_tasks",
    ],
    "abspose/models/weights_cli.py": [
        "test/models/test_blazepose_weights.py",
        "test/test_detect_cli.py::test_weights_command_reports_the_cache",
    ],
    "abspose/precision.py": ["test/test_precision.py", "test/training/test_train.py"],
}
_COMPARE_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


@dataclass
class Mutant:
    module: str
    index: int  # the index-th mutation point of the module (in ast.walk order of function bodies)
    line: int
    what: str


def _points(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Mutation points (node, description) in function bodies, in a fixed order."""
    out: list[tuple[ast.AST, str]] = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for stmt in fn.body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # docstring
            for node in ast.walk(stmt):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and node is not stmt:
                    continue
                if isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAP:
                    out.append((node, f"{type(node.ops[0]).__name__} -> {_COMPARE_SWAP[type(node.ops[0])].__name__}"))
                elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
                    out.append((node, f"{type(node.op).__name__} -> {_BINOP_SWAP[type(node.op)].__name__}"))
                elif isinstance(node, ast.BoolOp):
                    out.append((node, "and <-> or"))
                elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                    out.append((node, "drop not"))
                elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
                    out.append((node, f"constant {node.value!r}"))
                elif (
                    isinstance(node, ast.Return)
                    and node.value is not None
                    and not (isinstance(node.value, ast.Constant) and node.value.value is None)
                ):
                    out.append((node, "return None"))
    return out


def _apply(node: ast.AST) -> None:
    if isinstance(node, ast.Compare):
        node.ops[0] = _COMPARE_SWAP[type(node.ops[0])]()
    elif isinstance(node, ast.BinOp):
        node.op = _BINOP_SWAP[type(node.op)]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        node.op = ast.UAdd()  # +x: `not` dropped, truthiness kept as the value itself
    elif isinstance(node, ast.Constant):
        v = node.value
        node.value = (not v) if isinstance(v, bool) else (1 if v == 0 else 0 if v == 1 else v + 1)
    elif isinstance(node, ast.Return):
        node.value = None


def mutants(module: str, root: Path = REPO) -> list[Mutant]:
    tree = ast.parse((root / module).read_text())
    return [Mutant(module, i, node.lineno, what) for i, (node, what) in enumerate(_points(tree))]


def mutated_source(m: Mutant, source: str) -> str:
    """``source`` (the module as it was when the mutants were listed) with mutant ``m`` applied."""
    tree = ast.parse(source)
    node, _ = _points(tree)[m.index]
    if isinstance(node, ast.UnaryOp):  # `not x` -> `x`: replace the node in its parent
        for parent in ast.walk(tree):
            for name, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, name, node.operand)
                elif isinstance(value, list) and any(v is node for v in value):
                    value[[v is node for v in value].index(True)] = node.operand
    else:
        _apply(node)
    return ast.unparse(ast.fix_missing_locations(tree))


def _copy_tree(dest: Path, src: Path = REPO) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache")
    shutil.copytree(src, dest, ignore=ignore, symlinks=True)


def _pytest(workdir: Path, tests: list[str], timeout: float) -> subprocess.CompletedProcess:
    """The tests, run in ``workdir`` (a copy of the tree) against the copy's abspose and the real shared data."""
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("ABSPOSE_DATA", str(REPO.parent / "shared" / "data"))
    # deselected: the CUDA tests (this runs on a CPU; they would skip, and a skip fails the baseline), and
    # NanoDet's compiled-vs-eager test (~3 min of compiling: longer than a mutant's timeout; it skips in bf16
    # on CPUs without bf16)
    deselect = "not cuda and not test_compiled_nanodet"
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-k", deselect, *tests]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def run_one(m: Mutant, workdir: Path, timeout: float) -> tuple[Mutant, str, float]:
    """'killed', 'timeout' or 'survived' for one mutant, run in ``workdir`` (a private copy of the tree)."""
    target = workdir / m.module
    original = target.read_text()  # the copy's snapshot: edits to the working tree meanwhile do not leak in
    target.write_text(mutated_source(m, original))
    start = time.monotonic()
    try:
        r = _pytest(workdir, TARGETS[m.module], timeout)
        outcome = "survived" if r.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        outcome = "timeout"
    finally:
        target.write_text(original)
    return m, outcome, time.monotonic() - start


def _line_range(text: str) -> tuple[int, int]:
    """'FIRST-LAST' -> (first, last) line numbers (argparse reports a bad value and exits 2)."""
    first, _, last = text.partition("-")
    if not (first.isdigit() and last.isdigit() and int(first) <= int(last)):
        raise argparse.ArgumentTypeError(f"'{text}' is not FIRST-LAST line numbers")
    return int(first), int(last)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-module", type=int, default=15, help="mutants sampled per module (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0, help="s per mutant's test run")
    parser.add_argument("--only", default="", help="modules whose path contains this text (comma-separated: any)")
    parser.add_argument(
        "--lines", type=_line_range, default=None, help="FIRST-LAST: only mutants on these lines of the chosen modules"
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="abspose_mutation_") as tmp:
        dirs = [Path(tmp) / f"w{j}" for j in range(args.jobs)]
        _copy_tree(dirs[0])  # one snapshot of the tree: mutants are listed and made from it
        for d in dirs[1:]:
            _copy_tree(d, dirs[0])
        chosen: list[Mutant] = []
        for module in TARGETS:
            if not any(part in module for part in args.only.split(",")):
                continue
            ms = mutants(module, dirs[0])
            if args.lines:
                ms = [m for m in ms if args.lines[0] <= m.line <= args.lines[1]]
            chosen += rng.sample(ms, min(args.per_module, len(ms))) if args.per_module else ms
        print(f"{len(chosen)} mutants in {len({m.module for m in chosen})} modules, {args.jobs} jobs", flush=True)
        tests = sorted({t for m in chosen for t in TARGETS[m.module]})
        base = _pytest(dirs[0], tests, 10 * args.timeout)  # unmutated, the tests must pass (and not skip)
        summary = (base.stdout.strip().splitlines() or ["no output"])[-1]
        print(f"baseline: {summary}", flush=True)
        if base.returncode != 0 or "skipped" in summary:
            print("the unmutated tests must pass without skips; is ../shared/data there?", file=sys.stderr)
            return 2
        free = list(dirs)
        lock = threading.Lock()

        def task(m: Mutant) -> tuple[Mutant, str, float]:
            with lock:
                d = free.pop()
            try:
                return run_one(m, d, args.timeout)
            finally:
                with lock:
                    free.append(d)

        results = []
        with ThreadPoolExecutor(args.jobs) as pool:
            for m, outcome, seconds in pool.map(task, chosen):
                results.append((m, outcome))
                print(f"{outcome:8s} {seconds:5.1f} s  {m.module}:{m.line}  {m.what}", flush=True)
    print("\n| module | mutants | killed | kill rate |\n|---|---:|---:|---:|")
    for module in dict.fromkeys(m.module for m, _ in results):
        mine = [o for m, o in results if m.module == module]
        killed = sum(o != "survived" for o in mine)
        print(f"| `{module}` | {len(mine)} | {killed} | {100 * killed / len(mine):.0f} % |")
    killed = sum(o != "survived" for _, o in results)
    print(f"| **all** | {len(results)} | {killed} | **{100 * killed / max(len(results), 1):.1f} %** |")
    survivors = [m for m, o in results if o == "survived"]
    if survivors:
        print("\nsurvivors:")
        for m in survivors:
            print(f"  {m.module}:{m.line}  {m.what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
