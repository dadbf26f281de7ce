"""The node's frame rate and latency at camera rate, without ROS: where a frame's time goes besides processing.

The stand-in for ``scripts/abspose_node``: a feeder thread plays the TU/e RGB-D bag's messages at a given rate
(each of its 5 stills held for 1 s, a still scene at camera rate), deserializing each one from CDR and
stamping it with the wall clock as it arrives (what rclpy's executor does before a callback), and hands them
to the node's own ``NodeCore`` (depth buffers, latest-wins hand-off, one worker thread running
``FrameProcessor``), whose publishers serialize the outputs to CDR. Printed per row: the input rate, frames
published per second, latency from the image stamp to publishing (p50 / p90), the worker's time per frame
(p50), and the share of frames dropped (replaced while waiting). The peer: the same frames processed back to
back with nothing else running (the rate the worker could reach alone). Run:

    python bench/bench_node.py [--seconds 15] [--rates 5,15,30] [--threads 2,1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ABSPOSE_DATA", REPO.parent / "shared" / "data"))
BAG = DATA / "rgbd" / "tue_hero" / "tue_hero_rgbd_ros2_mcap"
HOLD_S = 1.0  # each still is a scene held this long


def bag_messages() -> dict[str, list[tuple[str, bytes]]]:
    """Raw CDR (type, bytes) per topic kind: image, info, depth_image (registered to the colour camera, so
    its CameraInfo is the colour one)."""
    from rosbags.highlevel import AnyReader

    raw: dict[str, list[tuple[str, bytes]]] = {}
    with AnyReader([BAG]) as reader:
        for conn, _, data in reader.messages():
            t = conn.topic
            kind = ("depth_" if "depth" in t else "") + ("info" if t.endswith("camera_info") else "image")
            raw.setdefault(kind, []).append((conn.msgtype, bytes(data)))
    return raw


def restamp(msg, ns: int):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
    return msg


def run_row(core, raw, rate: float, seconds: float) -> dict[str, float]:
    """Feed ``rate`` Hz for ``seconds``; the node's published frames, latency and worker time."""
    from abspose.ros.messages import typestore

    deserialize = typestore().deserialize_cdr
    published: list[float] = []  # latency (ms) of each published frame
    worker: list[float] = []
    process = core.processor.process

    def timed(*args, **kw):
        t0 = time.perf_counter()
        result = process(*args, **kw)
        worker.append((time.perf_counter() - t0) * 1000)
        published.append((time.time_ns() - result.stamp_ns) * 1e-6)
        return result

    core.processor.process = timed
    n_frames = len(raw["image"])
    period, count = 1.0 / rate, int(rate * seconds)
    dropped0 = core.stats.dropped
    t0 = time.perf_counter()
    for k in range(count):
        i = int(k * period / HOLD_S) % n_frames
        now = time.time_ns()
        image, info, depth = (
            restamp(deserialize(raw[kind][i][1], raw[kind][i][0]), now) for kind in ("image", "info", "depth_image")
        )
        core.on_depth(depth)
        core.on_image(image)
        core.submit(image, info)
        time.sleep(max(0.0, t0 + (k + 1) * period - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    time.sleep(0.3)
    core.processor.process = process
    lat = np.asarray(published)
    return {
        "out_hz": len(lat) / elapsed,
        "lat50": float(np.percentile(lat, 50)),
        "lat90": float(np.percentile(lat, 90)),
        "work50": float(np.percentile(worker, 50)),
        "dropped": (core.stats.dropped - dropped0) / count,
    }


def back_to_back(processor, raw, frames: int) -> float:
    """Frames/s of FrameProcessor.process alone on the same messages (the depth paired by hand)."""
    from abspose.ros.messages import typestore

    deserialize = typestore().deserialize_cdr
    msgs = [
        [deserialize(raw[kind][i][1], raw[kind][i][0]) for kind in ("image", "info", "depth_image")]
        for i in range(len(raw["image"]))
    ]
    processor.pipeline.detector.reset()
    t0 = time.perf_counter()
    for k in range(frames):
        image, info, depth = msgs[k // 30 % len(msgs)]
        ns = 10**18 + k * 33_333_333
        processor.process(restamp(image, ns), info, restamp(depth, ns))
    return frames / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="timed seconds per row (after 3 s of warm-up)")
    ap.add_argument("--rates", default="5,15,30", help="input rates (Hz)")
    ap.add_argument("--threads", default="2,1", help="torch intra-op thread counts to compare")
    ap.add_argument("--people", default="1,0", help="detector.max_people values (0: everyone found)")
    args = ap.parse_args()
    if not BAG.exists():
        sys.exit(f"bench: {BAG} not found (needs ../shared/data beside the repository)")
    from abspose.ros import config
    from abspose.ros.messages import MessageTypes, typestore
    from abspose.ros.node_core import NodeCore, Outputs
    from abspose.ros.processor import FrameProcessor

    raw = bag_messages()
    types = MessageTypes.rosbags()
    store = typestore()

    def publish(msg) -> None:  # what rclpy's publish() costs besides the middleware: one serialization
        for m in msg if isinstance(msg, list) else [msg]:
            store.serialize_cdr(m, m.__msgtype__)

    print(f"**node stand-in, {os.cpu_count()} CPU cores, torch {torch.__version__}, TU/e RGB-D bag, depth on**\n")
    print("| people | torch threads | input Hz | published Hz | latency p50 / p90 ms | worker ms p50 | dropped |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    peers = []
    for people in (int(x) for x in args.people.split(",")):
        for threads in (int(x) for x in args.threads.split(",")):
            torch.set_num_threads(threads)
            params = config.check({**config.DEFAULTS, "device": "cpu", "detector.max_people": people}, "bench")
            core = NodeCore(lambda level, text: None, types)
            core.configure(params, FrameProcessor(params, types))
            core.outputs = Outputs(publish, publish, publish)
            peers.append((people, threads, back_to_back(core.processor, raw, 60)))
            core.activate()
            run_row(core, raw, 30.0, 3.0)  # warm-up
            for rate in (float(x) for x in args.rates.split(",")):
                r = run_row(core, raw, rate, args.seconds)
                print(
                    f"| {people or 'all'} | {threads} | {rate:g} | {r['out_hz']:.1f} | {r['lat50']:.0f} / "
                    f"{r['lat90']:.0f} | {r['work50']:.1f} | {100 * r['dropped']:.0f} % |"
                )
            core.stop()
    print("\nPeer: the worker alone, FrameProcessor.process back to back on the same frames (frames/s):\n")
    for people, threads, fps in peers:
        print(f"- people {people or 'all'}, torch threads {threads}: {fps:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
