"""The whole frame path, stage by stage, on real frames: where a frame's time goes.

Stages, as the node runs them: 2D (detector + landmarks), undistort, depth (readout), lift, fuse, track,
messages (skeletons, markers, TF). Inputs: the TU/e RGB-D frames (one person, with and without depth), the
group photo and the street video's frames (monocular). At 3 and 10 people the stages after the 2D detector
run on the TU/e person's keypoints repeated 12 px apart (the detector finds at most 2 people in any shared
image), so the table separates the 2D stage (people it really found) from the rest. mediapipe's own CPU
pipeline (Tasks PoseLandmarker, IMAGE mode) on the same frames is the peer for the 2D stage.
Prints one markdown table: mean / p50 / p99 ms per stage and for the whole frame.

    python bench/bench_pipeline.py [--device cuda] [--fp16] [--compile] [--rounds 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ABSPOSE_DATA", REPO.parent / "shared" / "data"))
STAGES = ("2D", "undistort", "depth", "lift", "fuse", "track", "messages")


def tue_frames() -> list[tuple[np.ndarray, object, np.ndarray]]:
    from abspose.camera import load_camera_info
    from abspose.image import read_image

    folder = DATA / "rgbd" / "tue_hero" / "frames"
    out = []
    for rgb in sorted(folder.glob("*_rgb.png")):
        stem = rgb.name.removesuffix("_rgb.png")
        depth = np.load(folder / f"{stem}_depth_m.npy").astype(np.float32)
        out.append((read_image(rgb), load_camera_info(folder / f"{stem}_camera_info.json"), depth))
    if not out:
        sys.exit(f"bench: no frames in {folder} (needs ../shared/data beside the repository)")
    return out


class Clock:
    """Per-stage milliseconds; synchronizes CUDA at every stage boundary so the time lands where it is spent."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.frame: dict[str, float] = {}

    def start(self) -> None:
        self.frame = dict.fromkeys(STAGES, 0.0)
        self._sync()
        self.t = time.perf_counter()

    def lap(self, stage: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.frame[stage] += (now - self.t) * 1000
        self.t = now

    def stop(self) -> None:
        for stage, ms in self.frame.items():
            self.ms[stage].append(ms)
        self.ms["frame"].append(sum(self.frame.values()))

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def repeat_people(poses, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keypoints [n, J, 2], confidence [n, J], score [n] from the first person, copies 12 px apart around it
    (all inside the frame: keypoints past the calibrated region cost the full Newton budget to undistort)."""
    kp, conf, score = poses.keypoints[:1], poses.confidence[:1], poses.score[:1]
    k = torch.arange(n, device=kp.device, dtype=kp.dtype) - (n - 1) / 2
    shift = k[:, None, None] * torch.tensor([12.0, 0.0], device=kp.device)
    return kp.expand(n, -1, -1) + shift, conf.expand(n, -1).clone(), score.expand(n).clone()


def one_frame(pipe, proc, clock: Clock, rgb, camera, depth, people: int | None, stamp_ns: int):
    """The node's frame path with a lap per stage (Pipeline.__call__ and FrameProcessor._outputs, unrolled)."""
    from abspose.fuse import SOURCE_FUSED, fuse
    from abspose.lifter import lift
    from abspose.pipeline import People

    cfg = pipe.cfg
    clock.start()
    poses = pipe.detector(rgb, "rgb8")
    clock.lap("2D")
    if people is None:
        kp, conf, score = poses.keypoints, poses.confidence, poses.score
    else:
        kp, conf, score = repeat_people(poses, people)
    ideal = camera.undistort_pixels(kp.double()).float()
    usable = (conf >= cfg.min_confidence) & torch.isfinite(ideal).all(-1)
    K = torch.as_tensor(camera.K, dtype=torch.float32, device=pipe.device)
    clock.lap("undistort")
    readout = pipe.read_depth(ideal, usable, camera, depth, "32FC1", None) if depth is not None else None
    clock.lap("depth")
    confidence = torch.where(usable, conf, torch.zeros_like(conf))
    lifted = lift(pipe.lifter, ideal, confidence, K, None, cfg.min_confidence)
    clock.lap("lift")
    fused = fuse(lifted.joints, lifted.uncertainty, ideal, K, readout, cfg.fuse)
    clock.lap("fuse")
    if readout is not None and cfg.depth_features:  # lift_with_depth's second pass, with the accepted readouts
        accepted = torch.where(
            fused.source == SOURCE_FUSED, readout.surface, torch.full_like(readout.surface, torch.nan)
        )
        lifted = lift(pipe.lifter, ideal, confidence, K, accepted, cfg.min_confidence)
        clock.lap("lift")
        fused = fuse(lifted.joints, lifted.uncertainty, ideal, K, readout, cfg.fuse)
        clock.lap("fuse")
    surface = readout.surface if readout is not None else torch.full_like(conf, float("nan"))
    result = People(kp, conf, score, fused.joints, fused.uncertainty, fused.source, fused.root, surface).cpu()
    clock.lap("fuse")  # the one device -> host copy of the frame
    track_ms = []
    update = proc.tracker.update

    def timed_update(*args):
        t0 = time.perf_counter()
        out = update(*args)
        track_ms.append((time.perf_counter() - t0) * 1000)
        return out

    proc.tracker.update = timed_update
    try:
        proc._outputs(stamp_ns, "camera", result)
    finally:
        proc.tracker.update = update
    clock.lap("messages")
    clock.frame["messages"] -= track_ms[0]
    clock.frame["track"] += track_ms[0]
    clock.stop()


def summary(ms: dict[str, list[float]]) -> str:
    def stats(xs: list[float]) -> str:
        a = np.asarray(xs)
        return f"{a.mean():.1f} / {np.percentile(a, 50):.1f} / {np.percentile(a, 99):.1f}"

    return " | ".join(stats(ms[s]) for s in (*STAGES, "frame"))


def mediapipe_2d(frames: list[np.ndarray], rounds: int) -> str:
    """mean / p50 / p99 ms of mediapipe's Tasks PoseLandmarker (IMAGE mode, num_poses=10) on the frames."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_detect2d import tasks_landmarker

    detect = tasks_landmarker(10)
    for f in frames:
        detect(f)
    ms = []
    for k in range(rounds):
        t0 = time.perf_counter()
        detect(frames[k % len(frames)])
        ms.append((time.perf_counter() - t0) * 1000)
    a = np.asarray(ms)
    return f"{a.mean():.1f} / {np.percentile(a, 50):.1f} / {np.percentile(a, 99):.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fp16", action="store_true", help="fp16 detector (CUDA only)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the detector (start-up not timed)")
    ap.add_argument("--rounds", type=int, default=40, help="timed frames per row (after 5 warm-up frames)")
    args = ap.parse_args()
    from abspose.image import read_image
    from abspose.lifter import Lifter
    from abspose.pipeline import Pipeline
    from abspose.ros import config
    from abspose.ros.messages import MessageTypes
    from abspose.ros.processor import FrameProcessor

    params = config.load(None, {"device": args.device, "fp16": args.fp16, "compile": args.compile})
    settings = config.settings(params)
    pipe = Pipeline(settings.pipeline, lifter=Lifter.load(device=args.device))
    tue = tue_frames()
    group = read_image(DATA / "images" / "tue_people_recognition" / "example_group_photo.jpg")
    from abspose.camera import CameraModel

    h, w = group.shape[:2]
    group_cam = CameraModel.pinhole(0.9 * w, 0.9 * w, w / 2, h / 2, w, h)
    rows = []
    cases = [("TU/e RGB-D, depth on", 1, True), ("TU/e, depth off", 1, False)]
    cases += [(f"TU/e person x{n}, depth on", n, True) for n in (3, 10)]
    cases += [(f"TU/e person x{n}, depth off", n, False) for n in (3, 10)]
    for name, n, use_depth in [*cases, ("group photo (as found), monocular", None, False)]:
        proc = FrameProcessor(params, MessageTypes.rosbags(), pipe)
        clock = Clock(pipe.device)
        for k in range(5 + args.rounds):
            if name.startswith("group"):
                rgb, cam, depth = group, group_cam, None
            else:
                rgb, cam, depth = tue[k % len(tue)]
                depth = depth if use_depth else None
            one_frame(pipe, proc, clock, rgb, cam, depth, n if n != 1 else None, 10**18 + k * 66_666_667)
            if k == 4:
                clock.ms.clear()
        rows.append(f"| {name} | {summary(clock.ms)} |")
    dtype = "fp16" if args.fp16 and args.device.startswith("cuda") else "fp32"
    mode = "compiled" if args.compile else "eager"
    gpu = f", {torch.cuda.get_device_name(0)}" if args.device.startswith("cuda") else f", {os.cpu_count()} CPU cores"
    head = f"**{args.device} {dtype} {mode}{gpu}, torch {torch.__version__}**"
    print(f"{head} (ms: mean / p50 / p99 over {args.rounds} frames)\n")
    print("| input | " + " | ".join(STAGES) + " | frame |")
    print("|---|" + "---:|" * (len(STAGES) + 1))
    print("\n".join(rows))
    if args.device == "cpu":
        peer = mediapipe_2d([f[0] for f in tue], args.rounds)
        print(f"\nmediapipe Tasks PoseLandmarker (CPU, IMAGE mode), TU/e frames, 2D only: {peer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
