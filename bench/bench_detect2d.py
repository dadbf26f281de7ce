"""Speed of abspose's torch BlazePose against mediapipe 0.10.21's own CPU pipeline, in one run.

Part 1, whole pipelines on the real TU/e RGB-D colour frames (one person, 640x480): ours with the detector on
every frame vs the Tasks PoseLandmarker in IMAGE mode, and ours in tracking mode vs Tasks in VIDEO mode.
Part 2, the per-person stage at 1, 3 and 10 people (ROIs given, as in tracking): ours crops all people and
runs the landmark model once on the batch; the peer is mediapipe's engine doing the same work per person
(OpenCV warp of the ROI + the TFLite interpreter with XNNPACK on the same model). BlazePose's short-range
detector finds at most 2 people in any shared image, so whole-pipeline numbers at 3 and 10 people cannot be
measured on real frames. Rounds are interleaved; medians; ratio = peer/ours (> 1: ours is faster).
Run: ``python bench/bench_detect2d.py [--compile] [--device cuda] [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FRAMES = REPO.parent / "shared" / "data" / "rgbd" / "tue_hero" / "frames"


def frames() -> list[np.ndarray]:
    out = [np.array(Image.open(p).convert("RGB")) for p in sorted(FRAMES.glob("*_rgb.png"))]
    if not out:
        sys.exit(f"bench: no frames in {FRAMES} (needs ../shared/data beside the repository)")
    return out


def interleaved(fns: dict[str, object], rounds: int, block: int = 5) -> dict[str, float]:
    """Median ms of each callable: blocks of ``block`` runs in turn (the first run of a block, after the other
    pipeline's spinning worker threads, is not timed), until each has ``rounds`` timed runs."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    while min(len(v) for v in times.values()) < rounds:
        for name, fn in fns.items():
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def cycling(fn, imgs: list[np.ndarray], after) -> object:
    """A callable running ``fn`` on the next frame each call, then ``after()``."""
    state = {"i": 0}

    def run() -> None:
        fn(imgs[state["i"] % len(imgs)])
        state["i"] += 1
        after()

    return run


def tasks_landmarker(num_poses: int, video: bool = False):
    import mediapipe as mp
    from mediapipe.tasks import python as mpt
    from mediapipe.tasks.python import vision

    from abspose.models.blazepose_weights import tasks_bundle

    opts = vision.PoseLandmarkerOptions(
        base_options=mpt.BaseOptions(model_asset_buffer=tasks_bundle()),
        num_poses=num_poses,
        running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
    )
    lm = vision.PoseLandmarker.create_from_options(opts)
    if not video:
        return lambda img: len(lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=img)).pose_landmarks)
    clock = iter(range(0, 10**9, 33))
    return lambda img: len(
        lm.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=img), next(clock)).pose_landmarks
    )


def mediapipe_engine_per_person(image: np.ndarray, rois: np.ndarray):
    """mediapipe's per-person work with its own tools: OpenCV warp of each ROI + TFLite (XNNPACK) inference."""
    import cv2
    from tflite_runtime.interpreter import Interpreter

    from abspose.models.blazepose_weights import find_tflite

    it = Interpreter(model_content=find_tflite("landmark"), num_threads=os.cpu_count())
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = [d["index"] for d in it.get_output_details()]
    dst = np.array([[0, 256], [0, 0], [256, 0], [256, 256]], np.float32)

    def run() -> None:
        for cx, cy, side, angle in rois:
            src = cv2.boxPoints(((cx, cy), (side, side), angle * 180 / np.pi)).astype(np.float32)
            m = cv2.getPerspectiveTransform(src, dst)
            crop = cv2.warpPerspective(image, m, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            it.set_tensor(inp, (crop[None].astype(np.float32) / 255.0))
            it.invoke()
            for o in outs:
                it.get_tensor(o)

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile our models (start-up cost not timed)")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    from abspose.detect2d import BlazePose, Options

    cuda = args.device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    imgs = frames()
    mode = "compiled" if args.compile else "eager"
    print(
        f"# abspose BlazePose ({args.device}, {mode}, fp32) vs mediapipe 0.10.21 on CPU; "
        f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads\n"
    )
    print("## Whole pipeline, real 640x480 frames, 1 person\n")
    print("| mode | ours ms/frame | mediapipe ms/frame | ratio mediapipe/ours |\n|---|---:|---:|---:|")
    for label, track in (("detector every frame (Tasks IMAGE)", False), ("tracking (Tasks VIDEO)", True)):
        ours = BlazePose(args.device, compile=args.compile, options=Options(tracking=track, detect_every=0))
        peer = tasks_landmarker(1, video=track)
        ours_fn, peer_fn = cycling(ours, imgs, sync), cycling(peer, imgs, lambda: None)
        ms = interleaved({"ours": ours_fn, "mp": peer_fn}, args.rounds)
        print(f"| {label} | {ms['ours']:.1f} | {ms['mp']:.1f} | {ms['mp'] / ms['ours']:.2f} |")

    print("\n## Per-person stage (crop + landmark model + decoding), ROIs given\n")
    print("| people | ours (batched) ms | mediapipe engine (OpenCV + TFLite XNNPACK, per person) ms | ratio |")
    print("|---:|---:|---:|---:|")
    ours = BlazePose(args.device, compile=args.compile)
    img = imgs[0]
    rgb = torch.from_numpy(img).to(args.device).permute(2, 0, 1).float()
    base = ours.detect_people(rgb)[0][:1]
    for n in (1, 3, 10):
        jitter = torch.linspace(-20, 20, n, device=base.device)[:, None] * torch.tensor(
            [1.0, 0.5, 1.0, 0.002], device=base.device
        )
        rois = base.expand(n, -1) + jitter

        def ours_fn(r: torch.Tensor = rois) -> None:
            ours.landmarks(rgb, r, img)  # the uint8 frame too, as the node's frames pass it
            sync()

        peer = mediapipe_engine_per_person(img, rois.cpu().numpy())
        ms = interleaved({"ours": ours_fn, "mp": peer}, args.rounds)
        print(f"| {n} | {ms['ours']:.1f} | {ms['mp']:.1f} | {ms['mp'] / ms['ours']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
