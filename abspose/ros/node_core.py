"""What the node decides, without ROS: lifecycle state, the latest-wins hand-off to one worker thread, depth
pairing, throttled warnings and diagnostics.

``scripts/abspose_node`` wires rclpy's callbacks, publishers and diagnostic updater to one ``NodeCore``;
everything it would otherwise decide lives here, where tests drive it with real threads and messages.
Times: stamps in ns, everything else in s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from abspose.ground import GroundPlane
from abspose.ros.config import LIVE, check
from abspose.ros.inputs import stamp_ns
from abspose.ros.messages import MessageTypes
from abspose.ros.preflight import problems
from abspose.ros.processor import FrameError, FrameProcessor, FrameResult
from abspose.ros.sync import StampBuffer
from abspose.ros.throttle import Throttle
from abspose.track import ENDED

OK, WARN, ERROR = 0, 1, 2  # = diagnostic_msgs/msg/DiagnosticStatus levels
UNCONFIGURED, INACTIVE, ACTIVE, FINALIZED = "unconfigured", "inactive", "active", "finalized"
STALE_IMAGES = 2.0  # s without an image before diagnostics say the input stopped
UNPAIRED_IMAGES = 10  # images in a row without a synchronized CameraInfo before that is a warning


@dataclass
class Outputs:
    """Where one frame's results go: the node's publishers (or a test's lists). ``debug_image`` may be None."""

    skeletons: Callable[[Any], None]
    markers: Callable[[Any], None]
    tf: Callable[[list[Any]], None]
    debug_image: Callable[[Any], None] | None = None


@dataclass
class Stats:
    """Counters since activation; ``last_*`` are monotonic times (s) or the last reason given."""

    images: int = 0  # colour images received
    unpaired: int = 0  # images since the last synchronized (image, CameraInfo) pair
    frames: int = 0  # frames processed and published
    dropped: int = 0  # replaced while waiting (latest wins)
    skipped: int = 0  # refused for bad input (FrameError)
    failed: int = 0  # any other exception in a frame
    monocular: int = 0  # frames run without depth although use_depth is on
    no_ground: int = 0  # frames without the TF ground plane although ground_frame is set
    dark: int = 0  # frames the detector saw stretched (near-black, or dark with lights: detect2d.Options.dark_level)
    people: int = 0
    latency: float = float("nan")  # s from the image stamp to publishing
    last_image: float | None = None
    last_frame: float | None = None
    busy_since: float | None = None  # a frame is in the worker since then
    last_skip: str = ""
    last_error: str = ""
    last_monocular: str = ""
    ground: str = ""  # where the last frame's floor came from (tf, parameters, depth)
    exposure: str = ""  # how the detector saw the last frame (as is, stretched, two looks)


class NodeCore:
    """The node's behaviour. ``log(level, text)`` with level 'info', 'warning' or 'error'; ``resolve`` gives
    a topic's full name; ``clock_ns`` is the node clock (for latency); ``context_ok`` says whether ROS still
    runs (a publish that fails after shutdown began is not an error); ``ground_lookup(frame_id, stamp_ns)``
    gives the floor in that frame at that stamp from TF (``ground_frame``), raising when TF cannot."""

    def __init__(
        self,
        log: Callable[[str, str], None],
        types: MessageTypes | None = None,
        resolve: Callable[[str], str] = str,
        clock_ns: Callable[[], int] = time.time_ns,
        context_ok: Callable[[], bool] = lambda: True,
        ground_lookup: Callable[[str, int], GroundPlane] | None = None,
    ) -> None:
        self.log, self.types, self.resolve = log, types or MessageTypes(), resolve
        self.ground_lookup = ground_lookup
        self.clock_ns, self.context_ok = clock_ns, context_ok
        self.state = UNCONFIGURED
        self.params: dict[str, Any] = {}
        self.processor: FrameProcessor | None = None
        self.outputs: Outputs | None = None
        self.depth, self.depth_info = StampBuffer(10), StampBuffer(10)
        self.stats = Stats()
        self.throttle = Throttle(5.0, emit=None)
        self._lock = threading.Lock()  # stats and the hand-off
        self._cond = threading.Condition(self._lock)
        self._pending: tuple[Any, Any] | None = None
        self._running = False
        self._generation = 0  # bumped by every activate/stop: a worker outliving stop() then retires
        self._worker: threading.Thread | None = None
        self._window = (Stats(), time.monotonic())  # the counters at the last diagnose() and its time

    # -- lifecycle ------------------------------------------------------------------------------------
    def configure(self, params: dict[str, Any], processor: FrameProcessor | None = None) -> bool:
        """Check the parameters and load the models (or take ``processor``); False, logged, on failure."""
        missing = problems()
        if missing:  # one line that names everything to install or run
            self.log("error", "configure failed: " + "; ".join(missing))
            return False
        try:
            self.params = check(params, "ROS parameters")
            self.processor = processor or FrameProcessor(self.params, self.types)
        except Exception as exc:  # bad parameter, no weights, no such device: say it, stay unconfigured
            self.log("error", f"configure failed: {exc}")
            self.processor = None
            return False
        self.throttle = Throttle(self.params["warn_period"], emit=None)
        compile_error = getattr(self.processor.pipeline.detector, "compile_error", None)
        if compile_error:
            self.log("warning", compile_error)
        depth = "on" if self.params["use_depth"] else "off"
        self.log("info", f"configured on {self.processor.device}; depth {depth}")
        self.state = INACTIVE
        return True

    def apply(self, changes: dict[str, Any]) -> list[str]:
        """Apply parameter ``changes`` (already checked with config.refusal) that can change while running;
        returns the names that wait for the next configure (and says so in the log)."""
        later = sorted(n for n in changes if n not in LIVE)
        live = {n: v for n, v in changes.items() if n in LIVE}
        if self.processor is not None and live:
            self.params = {**self.params, **live}
            self.processor.params.update(live)  # the processor reads these per frame
            self.throttle.period = self.params["warn_period"]
        if later and self.processor is not None:
            self.log("info", f"{', '.join(later)} will take effect at the next configure (cleanup, configure)")
        return later

    def activate(self) -> None:
        """Start the worker; frames handed over by :meth:`submit` are processed from now on."""
        if self.processor is None:
            raise RuntimeError("activate before configure")
        with self._lock:
            self.stats, self._pending, self._running = Stats(), None, True
            self._window = (Stats(), time.monotonic())
            self._generation += 1
            generation = self._generation
        self.depth.clear()
        self.depth_info.clear()
        self._worker = threading.Thread(target=self._work, args=(generation,), name="abspose_worker", daemon=True)
        self._worker.start()
        self.state = ACTIVE

    def deactivate(self) -> None:
        self.stop()
        self.state = INACTIVE

    def cleanup(self) -> None:
        """Stop (waiting for a frame in flight) and drop the models and outputs; configure may follow."""
        self.stop()
        self.processor, self.outputs = None, None
        self.state = UNCONFIGURED

    def shutdown(self) -> None:
        self.stop()
        self.state = FINALIZED

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the worker after the frame in flight; False when it did not finish within ``timeout`` s
        (it then publishes nothing more and exits after that frame)."""
        with self._cond:
            self._running, self._pending = False, None
            self._generation += 1
            self._cond.notify_all()
        worker, self._worker = self._worker, None
        if worker is None or worker is threading.current_thread():
            return True
        worker.join(timeout)
        return not worker.is_alive()

    # -- callbacks: store only ------------------------------------------------------------------------
    def on_image(self, msg: Any = None) -> None:
        """Every colour image, paired or not (to tell a missing CameraInfo from a missing image)."""
        with self._lock:
            s = self.stats
            s.images += 1
            s.unpaired += 1
            s.last_image = time.monotonic()
            unpaired = s.unpaired
        if self._running and unpaired > UNPAIRED_IMAGES:
            self._warn("sync", self._no_camera_info())

    def on_depth(self, msg: Any) -> None:
        self._buffer(self.depth, msg, "depth image")

    def on_depth_info(self, msg: Any) -> None:
        self._buffer(self.depth_info, msg, "depth CameraInfo")

    def _buffer(self, buffer: StampBuffer, msg: Any, what: str) -> None:
        """Store by stamp; an exception here would leave rclpy's executor, so a bad header drops the message."""
        try:
            buffer.add(stamp_ns(msg.header), msg)
        except Exception as exc:
            self._warn("buffer:" + what, f"{what} dropped: no usable header stamp ({type(exc).__name__}: {exc})")

    def submit(self, image: Any, info: Any) -> bool:
        """Hand a synchronized frame to the worker; a frame still waiting is dropped (latest wins).
        False when not active."""
        with self._cond:
            if not self._running:
                return False
            self.stats.unpaired = 0
            if self._pending is not None:
                self.stats.dropped += 1
            self._pending = (image, info)
            self._cond.notify()
        return True

    # -- the worker -----------------------------------------------------------------------------------
    def _work(self, generation: int) -> None:
        while True:
            with self._cond:
                while self._generation == generation and self._pending is None:
                    self._cond.wait()  # submit() and stop() notify
                if self._generation != generation:
                    return  # stopped (and maybe activated again, with a worker of its own)
                image, info = self._pending
                self._pending = None
                self.stats.busy_since = time.monotonic()
            try:
                self._process(image, info, generation)
            except BaseException as exc:  # process() catches every Exception; nothing may end the worker
                self._count_failure(exc)
            finally:
                with self._lock:
                    self.stats.busy_since = None

    def process(self, image: Any, info: Any) -> FrameResult | None:
        """One frame: pair depth, run the processor, publish. Never raises; None when nothing was published."""
        return self._process(image, info, self._generation)

    def _process(self, image: Any, info: Any, generation: int) -> FrameResult | None:
        processor, outputs, p = self.processor, self.outputs, self.params
        if processor is None:
            return None
        try:
            stamp = stamp_ns(image.header)
            depth, dinfo = self._pair_depth(stamp) if p["use_depth"] else (None, None)
            result = processor.process(image, info, depth, dinfo, self._ground(image.header, stamp))
            for text in result.warnings:
                self._warn("frame:" + text.split(":")[0], text)
            if not self._publish(outputs, image, result, generation):
                return None
        except FrameError as exc:
            with self._lock:
                self.stats.skipped += 1
                self.stats.last_skip = str(exc)
            self._warn("skip:" + str(exc).split(":")[0], f"frame skipped: {exc}")
            return None
        except Exception as exc:
            self._count_failure(exc)
            return None
        with self._lock:
            s = self.stats
            s.frames += 1
            s.last_frame = time.monotonic()
            s.latency = (self.clock_ns() - stamp) * 1e-9
            s.people = sum(person.state != ENDED for person in result.people)
            s.ground = result.ground
            s.exposure = result.exposure
            s.dark += result.exposure != "as is"
        return result

    def _ground(self, header: Any, stamp: int) -> GroundPlane | None:
        """The floor from TF at the image stamp, or None (with a throttled warning when ``ground_frame`` is set
        and TF cannot give it: the frame then runs with the other ground sources or none)."""
        frame = self.params["ground_frame"]
        if not frame or self.ground_lookup is None or not self.params["ground.contact"]:
            return None
        try:
            return self.ground_lookup(str(header.frame_id), stamp)
        except Exception as exc:  # tf2's Lookup/Connectivity/Extrapolation errors, or a transform under the floor
            reason = " ".join(str(exc).split()) or type(exc).__name__
            with self._lock:
                self.stats.no_ground += 1
            self._warn(
                "ground-tf",
                f"no transform from '{header.frame_id}' to ground_frame '{frame}' at the image stamp ({reason}): "
                "people are placed without the TF ground plane",
            )
            return None

    def _pair_depth(self, stamp: int) -> tuple[Any, Any]:
        slop = self.params["depth_slop"]
        depth, offset = self.depth.closest(stamp)
        if depth is not None and offset <= slop:
            return depth, self.depth_info.nearest(stamp)
        topic = self.resolve(self.params["depth_topic"])
        if depth is None:
            reason = f"no depth image on '{topic}' yet: running monocular"
        else:
            reason = (
                f"the nearest depth image on '{topic}' is {offset:.3f} s from the colour image, more than "
                f"depth_slop = {slop:g} s: running monocular (raise depth_slop if the streams are stamped so far apart)"
            )
        with self._lock:
            self.stats.monocular += 1
            self.stats.last_monocular = reason
        self._warn("depth-pairing", reason)
        return None, None

    def _publish(self, outputs: Outputs | None, image: Any, result: FrameResult, generation: int) -> bool:
        if outputs is None or not self._running or generation != self._generation:
            return False  # cleaned up, stopping or restarted while this frame ran: its results go nowhere
        try:
            if result.skeletons is not None:
                outputs.skeletons(result.skeletons)
            if result.markers is not None:
                outputs.markers(result.markers)
            if result.tf:
                outputs.tf(result.tf)
            if outputs.debug_image is not None:
                outputs.debug_image(self.debug_image(image, result))
        except Exception:
            if not self.context_ok() or not self._running or generation != self._generation:
                return False  # ROS is shutting down (Ctrl-C): publishers die with the context, quietly
            raise
        return True

    def debug_image(self, image: Any, result: FrameResult) -> Any:
        """The 2D overlay of ``result`` on ``image`` as an rgb8 Image message with the image's header."""
        from abspose.image import to_rgb8
        from abspose.overlay import draw_people
        from abspose.ros.inputs import image_array

        pic = draw_people(to_rgb8(*image_array(image)), result.people, self.params["min_keypoint_confidence"])
        h, w = pic.shape[:2]
        data = self.types.uint8_array(pic.tobytes())
        return self.types.make(
            "sensor_msgs/msg/Image", header=image.header, height=h, width=w, encoding="rgb8", step=w * 3, data=data
        )

    def _count_failure(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.stats.failed += 1
            self.stats.last_error = text
        self._warn("fail:" + type(exc).__name__, f"frame failed: {text}", "error")

    def _warn(self, kind: str, text: str, level: str = "warning") -> None:
        if self.throttle(kind, text):
            self.log(level, text)

    def _no_camera_info(self) -> str:
        image, info = self.resolve(self.params["image_topic"]), self.resolve(self.params["camera_info_topic"])
        return (
            f"images arrive on '{image}' but no CameraInfo on '{info}' within sync_slop = "
            f"{self.params['sync_slop']:g} s of them: no frame is processed"
        )

    # -- diagnostics ----------------------------------------------------------------------------------
    def diagnose(self) -> tuple[int, str, dict[str, str]]:
        """(level, summary, values) for /diagnostics; the summary names the real cause of anything not OK.
        Rates are over the time since the previous call."""
        now = time.monotonic()
        with self._lock:
            s = replace(self.stats)  # a snapshot
        before, t0 = self._window
        dt = max(now - t0, 1e-6)
        self._window = (s, now)
        new = {k: getattr(s, k) - getattr(before, k) for k in ("images", "frames", "skipped", "failed", "monocular")}
        values = {
            "state": self.state,
            "device": self.processor.device if self.processor is not None else "none",
            "input rate (Hz)": f"{new['images'] / dt:.1f}",
            "output rate (Hz)": f"{new['frames'] / dt:.1f}",
            "latency (s)": f"{s.latency:.3f}",
            "people": str(s.people),
            "dropped (latest wins)": str(s.dropped),
            "skipped (bad input)": str(s.skipped),
            "failed (errors)": str(s.failed),
            "monocular frames (no depth paired)": str(s.monocular),
            "frames without the TF ground plane": str(s.no_ground),
            "ground plane": s.ground or "none",
            "dark frames stretched": str(s.dark),
            "last frame seen": s.exposure or "none yet",
        }
        return (*self._status(s, new, now), values)

    def _status(self, s: Stats, new: dict[str, int], now: float) -> tuple[int, str]:
        if self.state != ACTIVE:
            return WARN, f"not active ({self.state})"
        image_topic = self.resolve(self.params["image_topic"])
        if s.last_image is None:
            return WARN, f"no images on '{image_topic}'"
        if now - s.last_image > STALE_IMAGES:
            return WARN, f"no image on '{image_topic}' for {now - s.last_image:.1f} s"
        if s.unpaired > UNPAIRED_IMAGES:
            return ERROR, self._no_camera_info()
        if s.busy_since is not None and s.frames == 0:
            return OK, f"processing the first frame ({now - s.busy_since:.1f} s; models warm up)"
        if new["failed"] and not new["frames"]:
            return ERROR, f"every frame fails: {s.last_error}"
        if new["skipped"] and not new["frames"]:
            return WARN, f"frames skipped for bad input: {s.last_skip}"
        if new["failed"] or new["skipped"]:
            return WARN, f"some frames dropped: {s.last_error or s.last_skip}"
        if new["monocular"]:
            return WARN, f"running monocular: {s.last_monocular}"
        return OK, "running"
