"""The offline runner: the node's processing on recordings, without ROS.

Inputs: ROS 2 bags (mcap or sqlite3 folders, or a bare .mcap file) and ROS 1 bags (via ``rosbags``), video
files (via OpenCV) and image files (PIL). Every frame goes through the same
:class:`~abspose.ros.processor.FrameProcessor` as in the node; the outputs go into an mcap bag that
``ros2 bag play`` and Foxglove open: ``/abspose/skeletons``, ``/abspose/markers``, ``/tf`` (and the
input image and camera info with ``copy_inputs``).

Bags: the colour image drives; CameraInfo is the one nearest in stamp (any age: calibrations rarely
change) from the colour image's namespace; depth is the depth image nearest in stamp within
``depth_slop``. An image is processed when the next one arrives (or the input ends), so depth recorded
just after its image still pairs, as it would in the node's synchroniser.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from abspose.camera import CameraError, CameraModel
from abspose.ground import GroundError, GroundPlane
from abspose.ros.inputs import stamp_ns
from abspose.ros.messages import MessageTypes, typestore
from abspose.ros.processor import FrameError, FrameProcessor, FrameResult
from abspose.ros.sync import StampBuffer
from abspose.ros.tf_store import TransformError, TransformStore
from abspose.ros.throttle import Throttle
from abspose.track import COASTING, CONFIRMED, ENDED

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
OUTPUT_TOPICS = {"skeletons": "/abspose/skeletons", "markers": "/abspose/markers", "tf": "/tf"}


class InputError(ValueError):
    """An input that cannot be read; the message names the file and what is wrong."""


@dataclass
class Frame:
    """One colour image with what goes with it; ``log_ns`` is the recording time (bags) or the stamp."""

    image: Any
    info: Any  # CameraInfo message or CameraModel
    depth: Any = None
    depth_info: Any = None
    log_ns: int = 0
    array: np.ndarray | None = None  # RGB pixels when the input was a video or image file
    ground: GroundPlane | None = None  # the floor from the recording's TF (ground_frame)
    ground_error: str = ""  # why there is none although ground_frame is set


@dataclass
class Topics:
    image: str | None = None
    camera_info: str | None = None
    depth: str | None = None
    depth_camera_info: str | None = None


def is_bag(path: Path) -> bool:
    return path.is_dir() or path.suffix in (".bag", ".mcap", ".db3")


def expand_bags(paths: list[Path]) -> list[Path]:
    """A folder of ROS 1 .bag files (no rosbag2 metadata.yaml) stands for its bags, in name order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir() and not (path / "metadata.yaml").exists() and sorted(path.glob("*.bag")):
            out.extend(sorted(path.glob("*.bag")))
        else:
            out.append(path)
    return out


def _choose_topics(connections: list, want: Topics, use_depth: bool) -> Topics:
    """Pick the topics: given names, else the colour image / depth image / their CameraInfo by name."""
    images = list(dict.fromkeys(c.topic for c in connections if c.msgtype == "sensor_msgs/msg/Image"))
    infos = list(dict.fromkeys(c.topic for c in connections if c.msgtype == "sensor_msgs/msg/CameraInfo"))
    for name in (want.image, want.camera_info, want.depth, want.depth_camera_info):
        if name and name not in images + infos:
            raise InputError(f"topic '{name}' is not in the input (images: {images}, camera infos: {infos})")
    colour = [t for t in images if "depth" not in t]
    image = want.image or (colour[0] if len(colour) == 1 else None)
    if image is None:
        raise InputError(f"cannot tell the colour image topic among {images}: give --image-topic")

    def info_for(topic: str) -> str | None:
        ns = topic.rsplit("/", 1)[0]
        same = [t for t in infos if t.rsplit("/", 1)[0] == ns]
        return same[0] if same else None

    depth = want.depth or next((t for t in images if "depth" in t), None) if use_depth else None
    return Topics(
        image,
        want.camera_info or info_for(image) or (infos[0] if len(infos) == 1 else None),
        depth,
        want.depth_camera_info or (info_for(depth) if depth else None),
    )


TF_TOPICS = ("/tf", "/tf_static")


def bag_frames(
    paths: list[Path],
    want: Topics,
    depth_slop: float,
    use_depth: bool = True,
    bad: dict[str, int] | None = None,
    ground_frame: str = "",
) -> Iterator[Frame]:
    """Frames from ROS 1 / ROS 2 bags (several bags are merged in time order). Messages that cannot be
    deserialized are skipped and counted per topic in ``bad``. With ``ground_frame``, each frame gets the
    floor from the bag's ``/tf`` and ``/tf_static`` at its stamp (or the reason it has none)."""
    from rosbags.highlevel import AnyReader

    paths = expand_bags(paths)
    try:
        reader = AnyReader(paths)
        reader.open()
    except Exception as exc:  # rosbags raises its own error types per format
        raise InputError(f"{', '.join(map(str, paths))}: cannot open as a bag ({exc})") from exc
    try:
        topics = _choose_topics(reader.connections, want, use_depth)
        if topics.camera_info is None:
            raise InputError(f"{paths[0]}: no CameraInfo for '{topics.image}': give --camera-info-topic")
        buffers = {t: StampBuffer(30) for t in (topics.camera_info, topics.depth, topics.depth_camera_info) if t}
        tf = TransformStore() if ground_frame else None
        tf_topics = TF_TOPICS if ground_frame else ()
        conns = [c for c in reader.connections if c.topic in (topics.image, *buffers, *tf_topics)]
        pending: tuple[int, int, Any] | None = None

        def frame(log_ns: int, s: int, image: Any) -> Frame:
            info = buffers[topics.camera_info].nearest(s)
            depth = buffers[topics.depth].nearest(s, depth_slop) if topics.depth else None
            dinfo = buffers[topics.depth_camera_info].nearest(s) if topics.depth_camera_info else None
            out = Frame(image, info, depth, dinfo, log_ns)
            if tf is not None:
                out.ground, out.ground_error = _ground(tf, ground_frame, image.header.frame_id, s)
            return out

        for conn, log_ns, raw in reader.messages(connections=conns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
                if conn.topic in tf_topics:
                    tf.add(msg, static=conn.topic == "/tf_static")
                    continue
                stamp = stamp_ns(msg.header)
            except Exception:  # a corrupt row: one message lost, not the run
                if bad is not None:
                    bad[conn.topic] = bad.get(conn.topic, 0) + 1
                continue
            if conn.topic == topics.image:
                if pending is not None:
                    yield frame(*pending)
                pending = (log_ns, stamp, msg)
            else:
                buffers[conn.topic].add(stamp, msg)
        if pending is not None:
            yield frame(*pending)
    finally:
        reader.close()


def _ground(tf: TransformStore, ground_frame: str, frame_id: str, stamp: int) -> tuple[GroundPlane | None, str]:
    try:
        rotation, translation = tf.lookup(ground_frame, frame_id, stamp)
        return GroundPlane.from_transform(rotation, translation), ""
    except (TransformError, GroundError) as exc:
        return None, f"ground: no floor from the recording's TF ({exc}): people placed without it"


def image_msg(T: MessageTypes, rgb: np.ndarray, stamp: int, frame_id: str) -> Any:
    """An rgb8 sensor_msgs/Image of an RGB uint8 array, stamped ``stamp`` ns in ``frame_id``."""
    from abspose.ros.outputs import header

    h, w = rgb.shape[:2]
    return T.make(
        "sensor_msgs/msg/Image",
        header=header(T, stamp, frame_id),
        height=h,
        width=w,
        encoding="rgb8",
        step=w * 3,
        data=np.ascontiguousarray(rgb, np.uint8).reshape(-1),
    )


def file_frames(
    paths: list[Path],
    camera: CameraModel | tuple[float, ...] | None,
    fps: float,
    frame_id: str,
    T: MessageTypes,
    hfov: float = 60.0,
    warn=print,
) -> Iterator[Frame]:
    """Frames from video files and image files; stamps from the video's frame rate or ``fps`` for images.

    ``camera``: a CameraModel, (fx, fy, cx, cy) px, or None to assume a ``hfov`` degree field of view.
    """
    from abspose.image import read_image

    index = 0
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            arrays, rate = _video(path)
        elif suffix in IMAGE_SUFFIXES:
            arrays, rate = iter([read_image(path)]), fps
        else:
            raise InputError(f"{path}: not a bag, video ({', '.join(sorted(VIDEO_SUFFIXES))}) or image file")
        for rgb in arrays:
            h, w = rgb.shape[:2]
            cam = camera
            if isinstance(cam, tuple):  # fx, fy, cx, cy: the image gives the size
                try:
                    cam = CameraModel.pinhole(*cam, w, h)
                except CameraError as exc:
                    raise InputError(f"{path}: --fx/--fy/--cx/--cy: {exc}") from exc
            elif cam is None:
                f = 0.5 * w / np.tan(np.radians(hfov) / 2)
                warn(
                    f"{path}: no intrinsics given (--camera-info or --fx/--fy/--cx/--cy): assuming a {hfov:g} deg "
                    f"horizontal field of view (f = {f:.0f} px); metric depth will be off by the focal error"
                )
                cam = CameraModel.pinhole(f, f, (w - 1) / 2, (h - 1) / 2, w, h)
                camera = cam
            stamp = round(index / rate * 1e9)
            yield Frame(image_msg(T, rgb, stamp, frame_id), cam, log_ns=stamp, array=rgb)
            index += 1


def _video(path: Path) -> tuple[Iterator[np.ndarray], float]:
    try:
        import cv2
    except ImportError as exc:
        raise InputError(f"{path}: reading video needs OpenCV: pip install opencv-python-headless") from exc
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open the video")
    rate = cap.get(cv2.CAP_PROP_FPS)
    if not (np.isfinite(rate) and rate > 0):  # containers without a rate report 0 (or garbage)
        rate = 30.0

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield bgr[..., ::-1].copy()
        finally:
            cap.release()

    return frames(), rate


class BagOutput:
    """Writes the outputs into an mcap bag: ``OUT.mcap`` -> one mcap file, any other name -> a rosbag2 folder."""

    def __init__(self, path: Path, copy_inputs: bool = False) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        self.single = self.path.suffix == ".mcap"
        self.folder = self.path.with_name(self.path.name + ".tmp") if self.single else self.path
        if self.path.exists():
            raise InputError(f"{self.path}: output exists; remove it or choose another name")
        if self.single and self.folder.exists():  # left by a run that was killed: ours to remove
            shutil.rmtree(self.folder)
        self.made = [d for d in reversed(self.path.absolute().parents) if not d.exists()]  # removed on discard
        self.store = typestore()
        self.writer = Writer(self.folder, version=8, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.copy_inputs = copy_inputs
        self.connections: dict[str, Any] = {}
        self.count: dict[str, int] = {}

    def write(self, topic: str, msg: Any, log_ns: int) -> None:
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msg.__msgtype__, typestore=self.store)
            self.count[topic] = 0
        self.writer.write(self.connections[topic], log_ns, self.store.serialize_cdr(msg, msg.__msgtype__))
        self.count[topic] += 1

    def close(self) -> Path:
        self.writer.close()
        if self.single:
            (self.folder / f"{self.folder.name}.mcap").rename(self.path)
            shutil.rmtree(self.folder)
        return self.path

    def discard(self) -> None:
        """Close and delete the output: a run that failed before writing anything leaves no empty bag behind
        (which would make the rerun refuse its output name)."""
        self.writer.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        for d in reversed(self.made):  # the parent folders this run created, innermost first, if still empty
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


@dataclass
class RunStats:
    frames: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    people: list[int] = field(default_factory=list)
    confirmed: int = 0  # confirmed or coasting people over all frames (what markers and TF show)
    seconds: list[float] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)


def run(
    frames: Iterator[Frame],
    processor: FrameProcessor,
    out: BagOutput | None,
    stats: RunStats,
    warn: Throttle,
    on_result=None,
) -> RunStats:
    """Process every frame, writing outputs to ``out``; ``on_result(frame, result)`` for overlays."""
    T = processor.types
    for frame in frames:
        stats.frames += 1
        try:
            result: FrameResult = processor.process(
                frame.image, frame.info, frame.depth, frame.depth_info, frame.ground
            )
            if frame.ground_error:
                result.warnings.append(frame.ground_error)
        except FrameError as exc:
            reason = str(exc)
            stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
            warn(reason.split(":")[0], f"frame {stats.frames} skipped: {reason}")
            continue
        except Exception as exc:  # a bug or an input nobody foresaw: counted, the run goes on
            reason = f"failed: {type(exc).__name__}: {exc}"
            stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
            warn(type(exc).__name__, f"frame {stats.frames} {reason}")
            continue
        for text in result.warnings:
            stats.warnings[text] = stats.warnings.get(text, 0) + 1
            warn(text.split(":")[0], f"frame {stats.frames}: {text}")
        stats.people.append(sum(p.state != ENDED for p in result.people))
        stats.confirmed += sum(p.state in (CONFIRMED, COASTING) for p in result.people)
        stats.seconds.append(result.seconds)
        if out is not None:
            log = frame.log_ns or result.stamp_ns
            if out.copy_inputs:
                out.write("/camera/image", frame.image, log)
                if not isinstance(frame.info, CameraModel):
                    out.write("/camera/camera_info", frame.info, log)
            if result.skeletons is not None:
                out.write(OUTPUT_TOPICS["skeletons"], result.skeletons, log)
            if result.markers is not None:
                out.write(OUTPUT_TOPICS["markers"], result.markers, log)
            if result.tf:
                out.write(OUTPUT_TOPICS["tf"], T.make("tf2_msgs/msg/TFMessage", transforms=result.tf), log)
        if on_result is not None:
            on_result(frame, result)
    return stats
