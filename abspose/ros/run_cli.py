"""`abspose run`: the node's pipeline on bags, videos and images, outputs into an mcap bag."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from abspose.cli import command, number


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="ROS 2 bag folder or .mcap/.db3, ROS 1 .bag (several are merged), video or image files",
    )
    p.add_argument("--output", "-o", type=Path, help="output bag: OUT.mcap (one file) or a folder name (rosbag2)")
    p.add_argument("--config", type=Path, help="parameter YAML (the node's, e.g. config/abspose.yaml)")
    p.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one parameter, e.g. -p tracking.confirm_hits=1 (repeatable)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: the config's, else cuda when available)")
    g = p.add_argument_group("bag topics (default: found by type and name)")
    g.add_argument("--image-topic")
    g.add_argument("--camera-info-topic")
    g.add_argument("--depth-topic")
    g.add_argument("--depth-camera-info-topic")
    g = p.add_argument_group("videos and images: intrinsics")
    g.add_argument("--camera-info", type=Path, help="CameraInfo as YAML (ROS calibration) or JSON")
    for k in ("fx", "fy", "cx", "cy"):
        g.add_argument(f"--{k}", type=float)
    g.add_argument(
        "--hfov",
        type=number(float, 0, 180, open_low=True, open_high=True),
        default=60.0,
        help="horizontal field of view assumed without intrinsics",
    )
    g.add_argument(
        "--fps", type=number(float, 0, open_low=True), default=10.0, help="stamp rate for a sequence of image files"
    )
    g.add_argument("--frame-id", default="camera_optical_frame", help="frame_id of videos and images")
    g = p.add_argument_group("ground plane (bags: -p ground_frame=base_footprint reads the bag's /tf and /tf_static)")
    g.add_argument(
        "--camera-height",
        type=number(float, 0, 20, open_low=True),
        help="m, the camera above the floor (= -p ground.camera_height=M)",
    )
    g.add_argument(
        "--camera-pitch",
        type=number(float, -90, 90),
        help="deg, down positive, with --camera-height (= -p ground.camera_pitch=DEG)",
    )
    p.add_argument("--copy-inputs", action="store_true", help="also write the input image and camera info")
    p.add_argument("--overlay", type=Path, help="2D overlay: a video (.mp4/.avi), or a folder for PNG frames")
    p.add_argument("--plot", type=Path, help="3D plot (PNG) of every track's path and last skeleton (needs matplotlib)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--verbose", "-v", action="store_true", help="a line per frame (always for photos)")


@command("run", "run the node's pipeline on bags, videos or images; write skeletons, markers and TF to mcap", _run_args)
def run_command(args: argparse.Namespace) -> int:
    import itertools

    from tqdm import tqdm

    from abspose.ros import config
    from abspose.ros.messages import MessageTypes
    from abspose.ros.processor import FrameProcessor
    from abspose.ros.runner import IMAGE_SUFFIXES, BagOutput, RunStats, is_bag, run
    from abspose.ros.throttle import Throttle

    overrides = dict(config.parse_override(t) for t in args.param)
    if args.device:
        overrides["device"] = args.device
    if args.camera_pitch is not None and args.camera_height is None:
        raise ValueError("--camera-pitch needs --camera-height")
    if args.camera_height is not None:
        overrides["ground.camera_height"] = args.camera_height
        overrides["ground.camera_pitch"] = args.camera_pitch or 0.0
    params = config.load(args.config, overrides)
    _check_device(params["device"])
    bags = [p for p in args.inputs if is_bag(p)]
    if bags and len(bags) != len(args.inputs):
        raise ValueError("give either bags or video/image files, not both")
    for path in args.inputs:
        if not path.exists():
            raise ValueError(f"{path}: no such file or folder")
    photos = not bags and all(p.suffix.lower() in IMAGE_SUFFIXES for p in args.inputs)
    default_hits = params["tracking.confirm_hits"] == config.DEFAULTS["tracking.confirm_hits"]
    if photos and "tracking.confirm_hits" not in overrides and default_hits:
        # photos are no video: one observation is all a person gets, so confirm on the first
        params = {**params, "tracking.confirm_hits": 1}
    T = MessageTypes.rosbags()
    log = Throttle(params["warn_period"], lambda text: tqdm.write(f"abspose run: warning: {text}", file=sys.stderr))
    bad: dict[str, int] = {}
    frames = _frames(args, params, bags, T, log, bad)
    # every input and output is opened before the models load (20-30 s): a wrong path fails at once
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{', '.join(map(str, args.inputs))}: no image frames in the input")
    out = BagOutput(args.output, args.copy_inputs) if args.output else None
    finished = False
    overlay = None
    try:
        overlay = _Overlay(args.overlay, params["min_keypoint_confidence"]) if args.overlay else None
        plot = _Plot(args.plot) if args.plot else None
        processor = FrameProcessor(params, T)
        every = photos or args.verbose
        hooks = [h for h in (overlay, plot, _print_frame if every else None) if h is not None]
        on_result = (lambda f, r: [h(f, r) for h in hooks]) if hooks else None
        stats = RunStats()
        progress = tqdm(
            itertools.chain([first], frames), desc="abspose run", unit="frame", disable=args.quiet, file=sys.stderr
        )
        run(progress, processor, out, stats, lambda kind, text: log(kind, text), on_result)
        if plot is not None:
            plot.save()
        finished = True
    finally:
        if out is not None:
            if finished or any(out.count.values()):
                out.close()  # a failed run keeps what it wrote
            else:
                out.discard()
        if overlay is not None:
            overlay.close()
    _summary(stats, processor, out, bad, params)
    return 0 if stats.seconds else 1


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device here (torch {torch.__version__}); use --device cpu")


def _frames(args: argparse.Namespace, params: dict, bags: list[Path], T, log, bad: dict[str, int]):
    from abspose.camera import load_camera_info
    from abspose.ros.runner import Topics, bag_frames, file_frames

    if bags:
        topics = Topics(args.image_topic, args.camera_info_topic, args.depth_topic, args.depth_camera_info_topic)
        return bag_frames(bags, topics, params["depth_slop"], params["use_depth"], bad, params["ground_frame"])
    camera = None
    if args.camera_info:
        camera = load_camera_info(args.camera_info)
    elif any(getattr(args, k) is not None for k in ("fx", "fy", "cx", "cy")):
        missing = [k for k in ("fx", "fy", "cx", "cy") if getattr(args, k) is None]
        if missing:
            raise ValueError(f"--fx, --fy, --cx, --cy go together; missing --{', --'.join(missing)}")
        camera = (args.fx, args.fy, args.cx, args.cy)
    return file_frames(
        args.inputs, camera, args.fps, args.frame_id, T, args.hfov, warn=lambda text: log("intrinsics", text)
    )


def _print_frame(frame, result) -> None:
    """One line a person can read: the frame's time, and each person's id, state, distance and what placed
    them (depth, the floor, the track's earlier measurements, or the lifter alone)."""
    from tqdm import tqdm

    from abspose.fuse import SOURCE_DEPTH, SOURCE_FUSED, SOURCE_GROUND, SOURCE_TRACK

    names = {0: "tentative", 1: "", 2: "coasting", 3: "ended"}
    placed_by = (((SOURCE_DEPTH, SOURCE_FUSED), "depth"), ((SOURCE_GROUND,), "floor"), ((SOURCE_TRACK,), "track scale"))
    people = []
    for p in result.people:
        depth = next((name for src, name in placed_by if np.isin(p.source, src).any()), "monocular")
        state = names.get(p.state, "")
        people.append(f"{p.id} {np.linalg.norm(p.root):.1f} m ({depth}{', ' + state if state else ''})")
    t = result.stamp_ns * 1e-9
    tqdm.write(f"t={t:.2f} s: {', '.join(people) if people else 'nobody'}", file=sys.stderr)


def _summary(stats, processor, out, bad: dict[str, int], params: dict) -> None:
    ms = 1000 * np.mean(stats.seconds) if stats.seconds else float("nan")
    print(
        f"frames {stats.frames}, processed {len(stats.seconds)}, skipped {sum(stats.skipped.values())}, "
        f"people per frame {np.mean(stats.people) if stats.people else 0:.2f}, {ms:.0f} ms/frame on "
        f"{processor.device}"
    )
    for reason, n in stats.skipped.items():
        print(f"  skipped {n}x: {reason}")
    for topic, n in bad.items():
        print(f"  {n} unreadable message(s) on {topic} skipped")
    if out is not None:
        print(f"wrote {out.path}: " + ", ".join(f"{t} {n}" for t, n in out.count.items()))
        if stats.people and not stats.confirmed:
            print(
                f"  nobody was confirmed, so no skeleton markers or TF were published: a track needs "
                f"tracking.confirm_hits = {params['tracking.confirm_hits']} sightings (-p tracking.confirm_hits=1 "
                "for sparse recordings)"
            )


class _Overlay:
    """2D overlays with track ids: a video file (OpenCV) or PNG frames in a folder."""

    def __init__(self, path: Path, min_confidence: float) -> None:
        self.path, self.min_confidence, self.writer, self.index = path, min_confidence, None, 0
        self.video = path.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov")
        if not self.video:
            path.mkdir(parents=True, exist_ok=True)

    def __call__(self, frame, result) -> None:
        from abspose.image import to_rgb8
        from abspose.overlay import draw_people
        from abspose.ros.inputs import image_array

        rgb = frame.array if frame.array is not None else to_rgb8(*image_array(frame.image))
        picture = draw_people(rgb, result.people, self.min_confidence)
        if not self.video:
            from PIL import Image

            Image.fromarray(picture).save(self.path / f"frame_{self.index:06d}.png")
        else:
            import cv2

            if self.writer is None:
                fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
                self.writer = cv2.VideoWriter(str(self.path), fourcc, 10.0, picture.shape[1::-1])
            self.writer.write(picture[..., ::-1])
        self.index += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def cube(points: np.ndarray, margin: float = 0.2) -> tuple[np.ndarray, float]:
    """(centre [3], half side) of the smallest axis-aligned cube holding the finite ``points`` [N, 3] with
    ``margin`` (m) to spare: a plot drawn in it has equal scales on its three axes."""
    pts = points[np.isfinite(points).all(-1)]
    return (pts.max(0) + pts.min(0)) / 2, float((pts.max(0) - pts.min(0)).max() / 2 + margin)


class _Plot:
    """A 3D plot of the run (camera optical frame, drawn with y up): each track's root path and the last
    skeleton seen of it."""

    def __init__(self, path: Path) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError as exc:
            raise ValueError(f"{path}: --plot needs matplotlib (pip install matplotlib)") from exc
        self.path, self.paths, self.last = path, {}, {}

    def __call__(self, frame, result) -> None:
        for p in result.people:
            if np.isfinite(p.root).all() and p.state != 3:
                self.paths.setdefault(p.id, []).append(p.root.copy())
                self.last[p.id] = (p.joints.copy(), p.number)

    def save(self) -> None:
        import matplotlib.pyplot as plt

        from abspose import skeleton
        from abspose.ros.outputs import colour

        fig = plt.figure(figsize=(8, 7))
        ax = fig.add_subplot(projection="3d")
        for tid, roots in self.paths.items():
            joints, number = self.last[tid]
            c = colour(number)
            r = np.array(roots)
            ax.plot(r[:, 0], r[:, 2], -r[:, 1], color=c, lw=1, alpha=0.6)
            for a, b in skeleton.BONE_INDEX:
                if np.isfinite(joints[[a, b]]).all():
                    ax.plot(joints[[a, b], 0], joints[[a, b], 2], -joints[[a, b], 1], color=c, lw=2)
            ax.text(r[-1, 0], r[-1, 2], -r[-1, 1] + 1.0, tid, color=c)
        ax.scatter([0], [0], [0], marker="^", color="k")
        pts = [np.array(r) for r in self.paths.values()] + [j for j, _ in self.last.values()] + [np.zeros((1, 3))]
        centre, half = cube(np.concatenate(pts)[:, [0, 2, 1]] * [1, 1, -1])
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)  # equal scales: skeletons keep their proportions
        ax.set_xlabel("x right (m)")
        ax.set_ylabel("z forward (m)")
        ax.set_zlabel("up (m)")
        ax.set_title(f"{len(self.paths)} tracks, camera at the origin")
        fig.savefig(self.path, dpi=100)
        plt.close(fig)
