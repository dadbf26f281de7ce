#!/usr/bin/env python3
"""Soak the frame path: thousands of real frames (the TU/e RGB-D frames with depth, and the group photo's
several people) through one FrameProcessor at 15 Hz, with time jumps forward and back; prints memory (RSS)
at the start and the end, its growth, and whether frames get slower.

    python tools/soak.py --frames 3000     # ~5 min on 2 cores; target: RSS growth < 5 %
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """Resident memory of this process now (not the peak), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def frames(data: Path):
    """The six inputs, as (image, camera_info, depth or None) rosbags messages stamped at 0."""
    from abspose.camera import load_camera_info
    from abspose.image import read_image
    from abspose.ros.messages import MessageTypes
    from abspose.ros.outputs import header
    from abspose.ros.runner import image_msg

    T = MessageTypes.rosbags()
    tue = data / "rgbd" / "tue_hero" / "frames"
    out = []
    for rgb_path in sorted(tue.glob("*_rgb.png")):
        stem = rgb_path.name.removesuffix("_rgb.png")
        cam = load_camera_info(tue / f"{stem}_camera_info.json")
        z = np.load(tue / f"{stem}_depth_m.npy").astype(np.float32)
        h, w = z.shape
        depth = T.make(
            "sensor_msgs/msg/Image",
            header=header(T, 0, "cam"),
            height=h,
            width=w,
            encoding="32FC1",
            step=w * 4,
            data=z.view(np.uint8).reshape(-1),
        )
        out.append((image_msg(T, read_image(rgb_path), 0, "cam"), cam, depth))
    group = read_image(data / "images" / "tue_people_recognition" / "example_group_photo.jpg")
    h, w = group.shape[:2]
    from abspose.camera import CameraModel

    out.append((image_msg(T, group, 0, "cam"), CameraModel.pinhole(0.9 * w, 0.9 * w, w / 2, h / 2, w, h), None))
    return out


def restamp(msg, ns: int):
    import dataclasses

    if msg is None:
        return None
    stamp = dataclasses.replace(msg.header.stamp, sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return dataclasses.replace(msg, header=dataclasses.replace(msg.header, stamp=stamp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    args = parser.parse_args(argv)
    from abspose.ros import config
    from abspose.ros.messages import MessageTypes
    from abspose.ros.processor import FrameProcessor

    data = Path(os.environ.get("ABSPOSE_DATA", REPO.parent / "shared" / "data"))
    inputs = frames(data)
    params = config.load(None, {"device": "cpu", "depth_slop": 0.5})
    processor = FrameProcessor(params, MessageTypes.rosbags())
    t_ns, seconds, people, warm = 1_000_000_000_000, [], [], None
    for k in range(args.frames):
        if k and k % 1000 == 0:
            t_ns += 100 * 10**9  # the robot was off for 100 s
        if k == args.frames // 2:
            t_ns -= 50 * 10**9  # a bag played again: time goes back
        t_ns += 66_666_667
        image, info, depth = inputs[(k // 30) % len(inputs)]  # 2 s on each input, as a camera would see it
        start = time.perf_counter()
        result = processor.process(restamp(image, t_ns), info, restamp(depth, t_ns))
        seconds.append(time.perf_counter() - start)
        people.append(len(result.people))
        if k == 100:
            warm = rss_mb()
        if k % 500 == 0:
            print(f"frame {k}: RSS {rss_mb():.0f} MB, {1000 * np.mean(seconds[-500:]):.1f} ms/frame", flush=True)
    end = rss_mb()
    first, last = 1000 * np.mean(seconds[100:600]), 1000 * np.mean(seconds[-500:])
    print(
        f"{args.frames} frames, up to {max(people)} people/frame: RSS after warm-up {warm:.0f} MB, at the end "
        f"{end:.0f} MB, growth {100 * (end - warm) / warm:+.1f} %; ms/frame {first:.1f} (frames 100-600) -> "
        f"{last:.1f} (last 500), drift {100 * (last - first) / first:+.1f} %"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
