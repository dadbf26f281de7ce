"""`abspose run` end to end on the real TU/e recordings in all three bag forms, a video and images."""

import dataclasses
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mcap.reader import make_reader
from PIL import Image
from rosbags.highlevel import AnyReader

from abspose.cli import main
from abspose.overlay import PALETTE
from abspose.ros.messages import MessageTypes, typestore
from abspose.ros.runner import Frame, InputError, RunStats, Topics, _choose_topics, bag_frames, file_frames, run

from conftest import data_path

TUE = ("tue_hero_rgbd_ros2_mcap", "tue_hero_rgbd_ros2_db3", "ros1_original")
# These recordings are snapshots: depth is stamped up to 0.34 s before/after its colour image, and the five
# frames are ~40 s apart, so pair depth within 0.5 s and confirm tracks on their first sighting.
TUE_PARAMS = ["-p", "depth_slop=0.5", "-p", "tracking.confirm_hits=1", "--device", "cpu", "-q"]


def read_outputs(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=typestore()) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    return out


@pytest.mark.parametrize("form", TUE)
def test_tue_bags_give_the_near_person_per_frame(form, tmp_path, capsys):
    bag = data_path("rgbd", "tue_hero", form)
    out = tmp_path / "out.mcap"
    assert main(["run", str(bag), "--output", str(out), *TUE_PARAMS]) == 0
    assert "frames 5, processed 5, skipped 0" in capsys.readouterr().out
    topics = read_outputs(out)
    skeletons, markers, tf = topics["/abspose/skeletons"], topics["/abspose/markers"], topics["/tf"]
    assert len(skeletons) == len(markers) == len(tf) == 5
    ids = []
    for arr, mk, tfm in zip(skeletons, markers, tf, strict=True):
        assert arr.header.frame_id == "head_rgbd_sensor_rgb_frame"
        live = [s for s in arr.skeletons if s.track_state != 3]
        near = min(live, key=lambda s: s.root.z)
        assert 1.6 < near.root.z < 2.1, f"near person at {near.root.z:.2f} m"
        body = {t.child_frame_id: t for t in tfm.transforms}
        assert f"body_{near.id}" in body
        assert body[f"body_{near.id}"].transform.translation.z == pytest.approx(near.root.z)
        assert body[f"body_{near.id}"].header.stamp == arr.header.stamp == mk.markers[0].header.stamp
        assert {m.ns for m in mk.markers if m.action == 0} >= {"bones", "joints", "labels"}
        ids.append(near.id)
    assert len(set(ids)) == 5 and all(i[0].isalpha() for i in ids)  # 40 s apart: new tracks, ids never reused
    with out.open("rb") as f:  # what Foxglove reads: ROS 2 message definitions and CDR
        summary = make_reader(f).get_summary()
    assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
    assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
    assert any(s.name == "abspose_ros/msg/SkeletonArray" for s in summary.schemas.values())


def test_depth_pairs_with_the_nearest_stamp_and_topics_are_found():
    bag = data_path("rgbd", "tue_hero", "tue_hero_rgbd_ros2_mcap")
    frames = list(bag_frames([bag], Topics(), depth_slop=0.5))
    assert len(frames) == 5 and all(f.depth is not None and f.info is not None for f in frames)
    for f in frames:
        di = f.depth.header.stamp.sec + f.depth.header.stamp.nanosec * 1e-9
        im = f.image.header.stamp.sec + f.image.header.stamp.nanosec * 1e-9
        assert abs(di - im) < 0.5
    assert all(f.depth is None for f in bag_frames([bag], Topics(), depth_slop=0.05))
    with pytest.raises(InputError, match="topic '/nope' is not in the input"):
        list(bag_frames([bag], Topics(image="/nope"), 0.1))


def test_video_with_overlay_and_images_with_intrinsics(tmp_path, capsys):
    video = data_path("images", "mmpose_demo", "mmpose_demo_street.mp4")
    out, overlay = tmp_path / "video.mcap", tmp_path / "overlay"
    plot = tmp_path / "plot.png"
    assert (
        main(
            ["run", str(video), "-o", str(out), "--overlay", str(overlay), "--plot", str(plot), "-q", "--device", "cpu"]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "assuming a 60 deg horizontal field of view" in captured.err
    assert not re.search(r"^t=\d", captured.err, re.M)  # a video is no photo: a line per frame only if --verbose
    pictures = sorted(overlay.glob("*.png"))
    assert len(pictures) == 5
    with Image.open(pictures[0]) as im:  # people drawn: the palette's colours appear
        colours = {tuple(c) for c in np.asarray(im.convert("RGB")).reshape(-1, 3)[::7]}
    assert PALETTE[0] in colours
    with Image.open(plot) as im:
        assert im.size == (800, 700)
    assert len(read_outputs(out)["/abspose/skeletons"]) == 5
    photo = data_path("images", "coco_cc_by", "coco_val2017_000000000785.jpg")
    out2 = tmp_path / "bagdir"
    args = [
        "run",
        str(photo),
        "-o",
        str(out2),
        "--fx",
        "500",
        "--fy",
        "500",
        "--cx",
        "320",
        "--cy",
        "212",
        "-p",
        "tracking.confirm_hits=1",
        "-q",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert (out2 / "metadata.yaml").exists()  # a name without .mcap: a rosbag2 folder
    arr = read_outputs(out2)["/abspose/skeletons"][0]
    assert len(arr.skeletons) == 1 and np.isfinite(arr.skeletons[0].root.z)


def test_cli_errors_name_the_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.bag"), "-q"]) == 2
    assert "missing.bag: no such file" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("x")
    assert main(["run", str(text), "-q"]) == 2
    assert "notes.txt: not a bag, video" in capsys.readouterr().err
    broken = tmp_path / "broken.bag"
    broken.write_bytes(b"#ROSBAG V2.0\n" + b"\0" * 50)
    assert main(["run", str(broken), "-q"]) == 2
    assert "broken.bag: cannot open as a bag" in capsys.readouterr().err
    existing = tmp_path / "exists.mcap"
    existing.write_bytes(b"")
    photo = data_path("images", "coco_cc_by", "coco_val2017_000000000785.jpg")
    assert main(["run", str(photo), "-o", str(existing), "-q"]) == 2
    assert "exists.mcap: output exists" in capsys.readouterr().err


def test_bad_intrinsics_flags_fail_before_writing_and_leave_no_output(tmp_path, capsys):
    photo = data_path("images", "coco_cc_by", "coco_val2017_000000000785.jpg")
    out = tmp_path / "out.mcap"
    zero = ["--fx", "0", "--fy", "0", "--cx", "0", "--cy", "0"]
    assert main(["run", str(photo), "-o", str(out), "-q", "--device", "cpu", *zero]) == 2
    err = capsys.readouterr().err
    assert "coco_val2017_000000000785.jpg: --fx/--fy/--cx/--cy: focal lengths must be positive" in err, err
    assert not out.exists() and not list(tmp_path.iterdir())  # no empty bag left to block the rerun
    assert main(["run", str(photo), "-o", str(out), "-q", "--device", "cpu", "--cx", "320"]) == 2
    assert "--fx, --fy, --cx, --cy go together; missing --fx, --fy, --cy" in capsys.readouterr().err
    # a failure after some frames were written keeps them (the bag is closed properly)
    text = tmp_path / "notes.txt"
    text.write_text("x")
    args = ["run", str(photo), str(text), "-o", str(out), "-q", "--device", "cpu", "-p", "tracking.confirm_hits=1"]
    assert main(args) == 2
    assert "notes.txt: not a bag, video" in capsys.readouterr().err
    assert len(read_outputs(out)["/abspose/skeletons"]) == 1


def test_each_image_gets_the_camera_info_of_its_own_namespace():
    # a RealSense-like recording: colour and depth each with their CameraInfo (a connection's topic and type
    # are all the choice reads)
    image, info = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
    topics = ["/cam/depth/image_rect_raw", "/cam/depth/camera_info", "/cam/color/image_raw", "/cam/color/camera_info"]
    conns = [SimpleNamespace(topic=t, msgtype=image if "image" in t else info) for t in topics]
    chosen = _choose_topics(conns, Topics(), use_depth=True)
    assert chosen == Topics(topics[2], topics[3], topics[0], topics[1])
    assert _choose_topics(conns, Topics(), use_depth=False) == Topics(topics[2], topics[3], None, None)
    given = _choose_topics(conns, Topics(camera_info=topics[1]), use_depth=True)
    assert given.camera_info == topics[1] and given.depth_camera_info == topics[1]


def test_an_image_without_intrinsics_gets_a_60_degree_camera_centred_on_it():
    photo = data_path("images", "coco_cc_by", "coco_val2017_000000000785.jpg")  # 640 x 425
    warned: list[str] = []
    frames = list(file_frames([photo, photo], None, 10.0, "camera", MessageTypes.rosbags(), warn=warned.append))
    k = frames[0].info.K
    assert k[0, 0] == k[1, 1] == pytest.approx(320 / math.tan(math.radians(30)))
    assert (k[0, 2], k[1, 2]) == pytest.approx((319.5, 212.0))
    assert [f.log_ns for f in frames] == [0, 100_000_000]  # stills stamped at the given rate
    assert frames[1].info is frames[0].info and len(warned) == 1 and "60 deg" in warned[0]


def test_the_run_counts_each_skipped_frame_once_and_goes_on_after_a_failing_one(bag_frame, make):
    image, info, depth = bag_frame
    odd = dataclasses.replace(image, encoding="yuv422_weird")
    frames = [
        Frame(odd, info),
        Frame(image, info, depth),
        Frame(odd, info),
        Frame(image, SimpleNamespace()),  # a CameraInfo without fields: an input nobody foresaw
        Frame(image, info, depth),
    ]
    warned: list[str] = []
    stats = RunStats()
    assert run(iter(frames), make(), None, stats, lambda kind, text: warned.append(text) or True) is stats
    assert stats.frames == 5 and len(stats.people) == 2 and min(stats.people) >= 1
    (failed, bad) = sorted(stats.skipped)
    assert failed.startswith("failed: AttributeError") and stats.skipped[failed] == 1
    assert "yuv422_weird" in bad and stats.skipped[bad] == 2
    assert len(warned) == 3 and "frame 4 failed: AttributeError" in warned[2]
