"""Hostile files through `abspose run` and `abspose detect`: each case exits 2 with one line naming the file
and what is wrong, leaves no partial output and never changes its input. Plus the cases that must *not*
fail: a corrupt message in a bag is skipped and counted, and a leftover temp folder does not block a run."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from abspose.cli import main

from conftest import data_path, png_claiming

PHOTO = ("images", "coco_cc_by", "coco_val2017_000000000785.jpg")


def digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def fails_cleanly(args: list[str], named: str, capsys, out: Path | None = None, inputs: list[Path] = ()) -> str:
    before = {p: digest(p) for p in inputs}
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    if out is not None:
        assert not out.exists() and not out.with_name(out.name + ".tmp").exists()
    assert all(digest(p) == h for p, h in before.items())
    return err


def test_decompression_bomb_is_refused_before_decoding(tmp_path, capsys):
    bomb = png_claiming(tmp_path / "bomb.png", 13000, 13000)
    out = tmp_path / "out.mcap"
    err = fails_cleanly(["run", str(bomb), "-o", str(out), "-q", "--device", "cpu"], "bomb.png", capsys, out, [bomb])
    assert "13000x13000 = 169 MP" in err
    fails_cleanly(["detect", str(bomb), "--device", "cpu"], "bomb.png: image is 13000x13000", capsys)


@pytest.mark.parametrize(
    ("flag", "name", "text", "what"),
    [
        ("--config", "params.yaml", "- 1\n- 2\n", "expected a mapping"),
        ("--config", "params.yaml", "42\n", "expected a mapping"),
        ("--config", "params.yaml", "abspose:\n  ros__parameters: null\n", "'ros__parameters' must be a mapping"),
        ("--config", "params.yaml", "abspose: {ros__parameters: {use_depth: [1,\n", "cannot read parameters"),
        ("--camera-info", "camera.yaml", "- 1\n", "expected a mapping of CameraInfo fields, got list"),
        ("--camera-info", "camera.yaml", "3.5\n", "expected a mapping of CameraInfo fields, got float"),
        ("--camera-info", "camera.yaml", '{"width": 640.7, "height": 480}', "width must be a whole number"),
    ],
)
def test_malformed_parameter_and_camera_info_files(tmp_path, capsys, flag, name, text, what):
    bad = tmp_path / name
    bad.write_text(text)
    out = tmp_path / "out.mcap"
    err = fails_cleanly(["run", str(data_path(*PHOTO)), flag, str(bad), "-o", str(out), "-q"], name, capsys, out)
    assert what in err


def test_bad_parameter_values_and_devices(tmp_path, capsys):
    photo = str(data_path(*PHOTO))
    out = tmp_path / "out.mcap"
    tag = 'device=!!python/object/apply:os.system ["echo pwned"]'
    fails_cleanly(["run", photo, "-p", tag, "-o", str(out), "-q"], "not a plain YAML value", capsys, out)
    fails_cleanly(["run", photo, "--device", "foo", "-o", str(out), "-q"], "'device' must be", capsys, out)
    if not torch.cuda.is_available():
        fails_cleanly(["run", photo, "--device", "cuda", "-o", str(out), "-q"], "--device cuda: no CUDA", capsys, out)


def test_a_video_without_frames_is_an_error_not_an_empty_bag(tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    out = tmp_path / "out.mcap"
    fails_cleanly(["run", str(video), "-o", str(out), "-q", "--device", "cpu"], "empty.avi", capsys, out, [video])


def test_a_failed_run_leaves_no_new_folders_behind(tmp_path, capsys):
    bomb = png_claiming(tmp_path / "bomb.png", 20000, 20000)
    out = tmp_path / "new" / "deeper" / "out.mcap"
    fails_cleanly(["run", str(bomb), "-o", str(out), "-q", "--device", "cpu"], "bomb.png", capsys, out)
    assert not (tmp_path / "new").exists()


def test_a_leftover_temp_folder_does_not_block_the_rerun(tmp_path, capsys):
    photo = data_path(*PHOTO)
    out = tmp_path / "out.mcap"
    (tmp_path / "out.mcap.tmp").mkdir()  # a run that was killed
    assert main(["run", str(photo), "-o", str(out), "-q", "--device", "cpu"]) == 0
    assert out.is_file() and not (tmp_path / "out.mcap.tmp").exists()


def test_a_photo_gives_skeletons_and_tf_by_default_and_a_readable_line(tmp_path, capsys):
    """Tracks need 3 sightings in a stream; a photo is seen once, so `abspose run photo` confirms at once."""
    from test_runner import read_outputs

    out = tmp_path / "photo.mcap"
    assert main(["run", str(data_path(*PHOTO)), "-o", str(out), "-q", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "t=0.00 s: p1 " in captured.err and "(monocular)" in captured.err
    got = read_outputs(out)
    assert got["/tf"][0].transforms[0].child_frame_id == "body_p1"
    assert any(m.ns == "bones" for m in got["/abspose/markers"][0].markers)


def test_a_corrupt_message_in_a_db3_bag_is_skipped_and_counted(tmp_path, capsys):
    src = data_path("rgbd", "tue_hero", "tue_hero_rgbd_ros2_db3")
    bag = tmp_path / "bag"
    shutil.copytree(src, bag)
    db = next(bag.glob("*.db3"))
    db.chmod(0o644)
    with sqlite3.connect(db) as con:
        topic_id = con.execute("SELECT id FROM topics WHERE name LIKE '%rgb/image_raw'").fetchone()[0]
        row = con.execute("SELECT id FROM messages WHERE topic_id = ? ORDER BY timestamp", (topic_id,)).fetchone()[0]
        con.execute("UPDATE messages SET data = ? WHERE id = ?", (b"\x00\x01\x00\x00garbage", row))
    out = tmp_path / "out.mcap"
    args = ["run", str(bag), "-o", str(out), "-q", "--device", "cpu", "-p", "depth_slop=0.5"]
    assert main([*args, "-p", "tracking.confirm_hits=1"]) == 0
    printed = capsys.readouterr().out
    assert "frames 4, processed 4" in printed and "1 unreadable message(s) on" in printed and out.is_file()
