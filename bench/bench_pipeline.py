"""The whole frame path, stage by stage, on real frames: where a frame's time goes.

Stages, as the node runs them: 2D (person detector + landmarks), undistort, depth (readout), lift, fuse,
track, messages (skeletons, markers, TF). Inputs, each with the people the front-end really finds: the TU/e
RGB-D frames (~5 people; also cut to the first person found, and padded to 10 with copies of that person
12 px apart for depth at 10 people), the street video's 5 frames in a loop and the group photo (9 people),
monocular. The 2D stage runs in tracking mode (the node's default: detector every 10th frame; each still held
for 10 frames, a still scene at camera rate) and, for the video and the photo, with the detector on every
frame. mediapipe's own CPU pipeline (Tasks PoseLandmarker, IMAGE mode, num_poses=10) on the same frames is the
peer for the 2D stage. Prints markdown tables: mean / p50 / p99 ms per stage and for the whole frame.

    python bench/bench_pipeline.py [--device cuda] [--fp16] [--compile] [--rounds 40] [--only TEXT]
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
        self.found: list[int] = []  # people the 2D stage found, per frame
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


def fit_people(poses, n: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keypoints [n, J, 2], confidence [n, J], score [n] of the people found (n None: all of them); the first n
    of them, padded with copies of the first person 12 px apart (all inside the frame: keypoints past the
    calibrated region cost the full Newton budget to undistort)."""
    kp, conf, score = poses.keypoints, poses.confidence, poses.score
    if n is None:
        return kp, conf, score
    kp, conf, score = kp[:n], conf[:n], score[:n]
    pad = n - len(kp)
    if pad > 0 and len(kp):
        k = torch.arange(1, pad + 1, device=kp.device, dtype=kp.dtype) * torch.where(
            torch.arange(pad, device=kp.device) % 2 == 0, 1.0, -1.0
        )
        copies = kp[:1] + k[:, None, None] * torch.tensor([12.0, 0.0], device=kp.device)
        kp = torch.cat([kp, copies])
        conf = torch.cat([conf, conf[:1].expand(pad, -1)])
        score = torch.cat([score, score[:1].expand(pad)])
    return kp, conf, score


def one_frame(pipe, proc, clock: Clock, rgb, camera, depth, people: int | None, stamp_ns: int):
    """The node's frame path with a lap per stage (Pipeline.__call__ and FrameProcessor._outputs, unrolled)."""
    from abspose.fuse import SOURCE_FUSED, fuse
    from abspose.lifter import lift
    from abspose.pipeline import People

    cfg = pipe.cfg
    clock.start()
    poses = pipe.detector(rgb, "rgb8")
    clock.lap("2D")
    clock.found.append(len(poses))
    kp, conf, score = fit_people(poses, people)
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
    result = People.of(kp, conf, score, fused, surface).cpu()
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
    """mean / p50 / p99 ms and people per frame of mediapipe's Tasks PoseLandmarker (CPU, IMAGE mode,
    num_poses=10) on the frames, in turn."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_detect2d import tasks_landmarker

    detect = tasks_landmarker(10)
    for f in frames[:5]:
        detect(f)
    ms, found = [], []
    for k in range(rounds):
        t0 = time.perf_counter()
        found.append(detect(frames[k % len(frames)]))
        ms.append((time.perf_counter() - t0) * 1000)
    a = np.asarray(ms)
    return f"{np.mean(found):.1f} | {a.mean():.1f} / {np.percentile(a, 50):.1f} / {np.percentile(a, 99):.1f}"


def street_frames() -> list[np.ndarray]:
    """The street video's frames (RGB; it has 5)."""
    from abspose.ros.runner import _video

    frames, _ = _video(DATA / "images" / "mmpose_demo" / "mmpose_demo_street.mp4")
    out = list(frames)
    if not out:
        sys.exit("bench: cannot read the street video")
    return out


def pinhole(img: np.ndarray):
    """A plausible pinhole camera for a photo without calibration (horizontal field of view ~58 deg)."""
    from abspose.camera import CameraModel

    h, w = img.shape[:2]
    return CameraModel.pinhole(0.9 * w, 0.9 * w, w / 2, h / 2, w, h)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fp16", action="store_true", help="fp16 detector (CUDA only)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the detector (start-up not timed)")
    ap.add_argument("--rounds", type=int, default=40, help="timed frames per row (after 5 warm-up frames)")
    ap.add_argument("--only", default="", help="run only the rows whose name contains this text")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"bench: {DATA} not found (needs ../shared/data beside the repository)")
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
    street = [(f, pinhole(f), None) for f in street_frames()]
    photo = read_image(DATA / "images" / "tue_people_recognition" / "example_group_photo.jpg")
    group = [(photo, pinhole(photo), None)]
    # name, frames, people kept after 2D (None: as found), depth, detector on every frame
    cases = [
        ("TU/e RGB-D, first person, depth on", tue, 1, True, False),
        ("TU/e RGB-D, first person, depth off", tue, 1, False, False),
        ("TU/e RGB-D, as found, depth on", tue, None, True, False),
        ("TU/e RGB-D, as found, depth off", tue, None, False, False),
        ("TU/e RGB-D, padded to 10, depth on", tue, 10, True, False),
        ("street video, tracking", street, None, False, False),
        ("street video, detector every frame", street, None, False, True),
        ("group photo, tracking", group, None, False, False),
        ("group photo, detector every frame", group, None, False, True),
    ]
    rows = []
    for name, frames, n, use_depth, every in cases:
        if args.only not in name:
            continue
        pipe.detector.options.tracking = not every
        pipe.detector.reset()
        proc = FrameProcessor(params, MessageTypes.rosbags(), pipe)
        clock = Clock(pipe.device)
        hold = 1 if frames is street else 10  # stills: each held for 10 frames (a still scene at camera rate)
        for k in range(5 + args.rounds):
            if hold > 1 and k % hold == 0:
                pipe.detector.reset()  # as the node does after a gap: a new scene
            rgb, cam, depth = frames[k // hold % len(frames)]
            depth = depth if use_depth else None
            one_frame(pipe, proc, clock, rgb, cam, depth, n, 10**18 + k * 66_666_667)
            if k == 4:
                clock.ms.clear()
                clock.found.clear()
        lifted = f"{n}" if n is not None else "as found"
        rows.append(f"| {name} | {np.mean(clock.found):.1f} | {lifted} | {summary(clock.ms)} |")
    dtype = "fp16" if args.fp16 and args.device.startswith("cuda") else "fp32"
    mode = "compiled" if args.compile else "eager"
    gpu = f", {torch.cuda.get_device_name(0)}" if args.device.startswith("cuda") else f", {os.cpu_count()} CPU cores"
    head = f"**{args.device} {dtype} {mode}{gpu}, torch {torch.__version__}**"
    print(f"{head} (ms: mean / p50 / p99 over {args.rounds} frames)\n")
    print("| input | found | lifted | " + " | ".join(STAGES) + " | frame |")
    print("|---|---:|---:|" + "---:|" * (len(STAGES) + 1))
    print("\n".join(rows))
    if args.device == "cpu" and not args.only:
        print("\nmediapipe Tasks PoseLandmarker (CPU, IMAGE mode, num_poses=10), 2D only:\n")
        print("| frames | found | ms: mean / p50 / p99 |\n|---|---:|---:|")
        for name, frames in (("TU/e RGB-D", tue), ("street video", street), ("group photo", group)):
            print(f"| {name} | {mediapipe_2d([f[0] for f in frames], args.rounds)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
