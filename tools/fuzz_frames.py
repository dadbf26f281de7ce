#!/usr/bin/env python3
"""Fuzz the node's frame path: mutated real messages (TU/e RGB-D bag) through FrameProcessor, with stamp
jumps between frames; counts each outcome class.

    python tools/fuzz_frames.py --cases 10000     # ~10 min on 2 cores

Classes: ok; refused (FrameError, the clear skip); crash (any other exception); hang (> --timeout s);
garbage (published output that lies: a non-finite joint or uncertainty marked valid, a non-unit quaternion,
an output stamp or frame that is not the image's, a TF whose parent is its child). The target is 0 crash,
0 hang, 0 garbage. test/ros/test_fuzz.py runs a few hundred cases in CI.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("ok", "refused", "crash", "hang", "garbage")

BIG = st.sampled_from([0, 1, 2, 3, 479, 480, 481, 640, 641, 2**16, 2**31 - 1, 2**32 - 1])
FLOATS = st.sampled_from([0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), -float("inf"), 525.0])


def load_frame(data: Path) -> tuple[Any, Any, Any, Any]:
    """(image, camera_info, depth, None) of the TU/e ROS 2 bag's first recording (its depth is registered to
    the colour camera: no depth CameraInfo)."""
    from rosbags.highlevel import AnyReader

    msgs: dict[str, Any] = {}
    with AnyReader([data / "rgbd" / "tue_hero" / "tue_hero_rgbd_ros2_mcap"]) as reader:
        for conn, _, raw in reader.messages():
            msgs.setdefault(conn.topic.split("/", 2)[-1], reader.deserialize(raw, conn.msgtype))
    pick = lambda end: next(m for t, m in msgs.items() if t.endswith(end))  # noqa: E731
    image, depth = pick("rgb/image_raw"), pick("depth_registered/image")
    depth = dataclasses.replace(depth, header=image.header)  # pairs with the image (the bag's is 0.2 s off)
    return image, pick("rgb/camera_info"), depth, None


def _header(msg: Any, sec: int | None = None, nanosec: int | None = None, frame: str | None = None) -> Any:
    stamp = msg.header.stamp
    stamp = dataclasses.replace(
        stamp, sec=stamp.sec if sec is None else sec, nanosec=stamp.nanosec if nanosec is None else nanosec
    )
    return dataclasses.replace(msg.header, stamp=stamp, frame_id=msg.header.frame_id if frame is None else frame)


@st.composite
def mutation(draw: st.DrawFn, base: tuple) -> tuple[Any, Any, Any, Any, float]:
    """One frame's messages with zero or more fields broken, and the seconds since the previous frame."""
    image, info, depth, dinfo = base
    kind = draw(st.sampled_from(["none", "image", "info", "depth", "dinfo", "header", "several"]))
    kinds = (
        {kind} if kind != "several" else set(draw(st.lists(st.sampled_from(["image", "info", "depth"]), min_size=2)))
    )
    if "image" in kinds:
        field = draw(st.sampled_from(["height", "width", "step", "encoding", "is_bigendian", "data"]))
        if field in ("height", "width", "step"):
            image = dataclasses.replace(image, **{field: draw(BIG)})
        elif field == "encoding":
            image = dataclasses.replace(
                image, encoding=draw(st.sampled_from(["mono8", "mono16", "bgra8", "32FC1", "x"]))
            )
        elif field == "is_bigendian":
            image = dataclasses.replace(image, is_bigendian=draw(st.sampled_from([0, 1, 255])))
        else:
            size = draw(st.sampled_from([0, 1, 100, image.data.size - 1, image.data.size + 7]))
            data = np.resize(image.data, size).astype(np.uint8)
            image = dataclasses.replace(image, data=data)
    if "header" in kinds:
        sec = draw(st.sampled_from([None, 0, -1, 2**31 - 1, 2**31, 10**10]))
        nanosec = draw(st.sampled_from([None, 0, 999_999_999, 10**9, 2**32 - 1]))
        frame = draw(st.sampled_from([None, "", "body_p1", "left_wrist_p2", "cam frame/ü"]))
        image = dataclasses.replace(image, header=_header(image, sec, nanosec, frame))
    if "info" in kinds:
        field = draw(st.sampled_from(["k", "d", "size", "model", "none"]))
        if field == "k":
            k = np.array(info.k, dtype=np.float64)
            k[draw(st.sampled_from([0, 2, 4, 5]))] = draw(FLOATS)
            info = dataclasses.replace(info, k=k)
        elif field == "d":
            d = draw(st.sampled_from([[], [float("nan")] * 5, [1e6] * 5, [0.1] * 14, [0.0] * 3]))
            info = dataclasses.replace(info, d=np.array(d, np.float64))
        elif field == "size":
            info = dataclasses.replace(info, width=draw(BIG), height=draw(BIG))
        elif field == "model":
            info = dataclasses.replace(info, distortion_model=draw(st.sampled_from(["", "equidistant", "fisheye9"])))
        else:
            info = None
    if "depth" in kinds:
        field = draw(st.sampled_from(["values", "size", "encoding", "none"]))
        if field == "values":
            value = draw(st.sampled_from([0.0, -1.0, 1e30, float("nan"), float("inf"), 0.3, 200.0]))
            share = draw(st.sampled_from([0.01, 0.5, 1.0]))
            z = np.frombuffer(depth.data.tobytes(), np.float32).copy()
            z[: int(share * z.size)] = value
            depth = dataclasses.replace(depth, data=z.view(np.uint8))
        elif field == "size":
            depth = dataclasses.replace(depth, height=draw(BIG))
        elif field == "encoding":
            depth = dataclasses.replace(depth, encoding=draw(st.sampled_from(["16UC1", "mono16", "64FC1", "rgb8"])))
        else:
            depth = None
    if "dinfo" in kinds:
        dinfo = draw(st.sampled_from([None, dataclasses.replace(base[1], width=320, height=240), base[1]]))
    jump = draw(st.sampled_from([0.1, 0.1, 0.0, -5.0, 1e4, 1e-9]))
    return image, info, depth, dinfo, jump


def garbage(result: Any, image: Any) -> str | None:
    """What, if anything, in a published result lies about the scene or breaks a ROS consumer."""
    arr = result.skeletons
    if arr is not None:
        if (arr.header.stamp.sec, arr.header.stamp.nanosec) != (image.header.stamp.sec, image.header.stamp.nanosec):
            return "output stamp is not the image's"
        if arr.header.frame_id != image.header.frame_id:
            return "output frame is not the image's"
        for s in arr.skeletons:
            joints = np.array([[j.x, j.y, j.z] for j in s.joints])
            valid = s.joint_source != 0
            if not np.isfinite(joints[valid]).all() or not np.isfinite(np.asarray(s.joint_uncertainty)[valid]).all():
                return f"non-finite joint or uncertainty marked valid ({s.id})"
            if valid.any() and np.abs(joints[valid]).max() > 1e3:
                return f"joint more than 1 km away ({s.id})"
    for tf in result.tf:
        q = tf.transform.rotation
        t = tf.transform.translation
        if abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1.0) > 1e-6 or not np.isfinite([t.x, t.y, t.z]).all():
            return f"bad transform {tf.child_frame_id}"
        if tf.child_frame_id == tf.header.frame_id or not tf.header.frame_id:
            return f"TF parent '{tf.header.frame_id}' of '{tf.child_frame_id}'"
    return None


def run_case(processor: Any, msgs: tuple, timeout: float) -> tuple[str, str]:
    """(outcome class, detail) of one frame through the processor, in a thread with a timeout."""
    from abspose.ros.processor import FrameError

    image, info, depth, dinfo = msgs
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = processor.process(image, info, depth, dinfo)
        except FrameError as exc:
            box["refused"] = str(exc)
        except Exception as exc:  # the class we are looking for
            box["crash"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return "hang", f"> {timeout} s"
    if "refused" in box:
        return "refused", box["refused"]
    if "crash" in box:
        return "crash", box["crash"]
    lie = garbage(box["result"], image)
    return ("garbage", lie) if lie else ("ok", "")


def fuzz(cases: int, seed: int = 0, timeout: float = 5.0, data: Path | None = None) -> tuple[Counter, dict]:
    """Run ``cases`` mutated frames; returns the counts per class and one example detail per (class, kind)."""
    from abspose.ros import config
    from abspose.ros.messages import MessageTypes
    from abspose.ros.processor import FrameProcessor

    data = data or Path(os.environ.get("ABSPOSE_DATA", REPO.parent / "shared" / "data"))
    base = load_frame(data)
    params = config.load(None, {"device": "cpu", "tracking.confirm_hits": 1, "detector.reuse_rois": False})
    processor = FrameProcessor(params, MessageTypes.rosbags())
    counts: Counter = Counter()
    examples: dict[tuple[str, str], str] = {}
    clock = [base[0].header.stamp.sec + base[0].header.stamp.nanosec * 1e-9]

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.seed(seed)
    @given(mutation(base))
    def case(drawn: tuple) -> None:
        image, info, depth, dinfo, jump = drawn
        clock[0] = max(0.0, clock[0] + jump)
        if image.header.stamp == base[0].header.stamp:  # unbroken stamps follow the sequence's clock
            sec, nsec = divmod(round(clock[0] * 1e9), 1_000_000_000)
            image = dataclasses.replace(image, header=_header(image, int(sec), int(nsec)))
        outcome, detail = run_case(processor, (image, info, depth, dinfo), timeout)
        counts[outcome] += 1
        examples.setdefault((outcome, detail.split(":")[0][:60]), detail[:300])

    case()
    return counts, examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=5.0, help="s before a frame counts as a hang")
    args = parser.parse_args(argv)
    counts, examples = fuzz(args.cases, args.seed, args.timeout)
    total = sum(counts.values())
    print(f"{total} cases")
    for name in CLASSES:
        print(f"  {name:8s} {counts[name]:6d}  ({100 * counts[name] / max(total, 1):.1f} %)")
    for (name, _), detail in sorted(examples.items()):
        if name in ("crash", "hang", "garbage"):
            print(f"  {name}: {detail}")
    return 0 if not (counts["crash"] or counts["hang"] or counts["garbage"]) else 1


if __name__ == "__main__":
    sys.exit(main())
