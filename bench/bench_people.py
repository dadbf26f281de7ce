"""People found and time per frame: abspose's NanoDet front-end vs mediapipe's Tasks PoseLandmarker, one run.

On the hand-labelled real images (test/fixtures/person_boxes.json) in three groups by how many people they
hold — ~1 (the mediapipe samples and the COCO skier), ~4 (the five TU/e robot frames), ~10 (the group photo
and the five street frames) — each pipeline runs every image of a group in turn: ours with the detector on
every frame (IMAGE) and in tracking mode (detector every 10th frame, people re-cropped from their
landmarks; VIDEO), ours with the tiles on every frame as before 2026-12-06 (IMAGE, tiles always: the
adaptive tiles' reference), ours with NanoDet in bfloat16 where the CPU computes it natively (``bf16``), and
mediapipe's PoseLandmarker (num_poses=10) in IMAGE and VIDEO mode. Printed: median
ms/frame, people found per frame (labelled people matched, see abspose/training/people_recall.py), ms per
person found, and the ratio peer/ours (> 1: ours is faster). ``--large`` adds frames 2, 3 and 4 times the
street frames' size (mosaics of them: the same people at their own pixel size), ours with rows of tiles of at
most 960 px (the default) against tiles of the short side (``tile_max=0``), and mediapipe. ``--per-person``
instead times frames of 1-4 copies of one person side by side and prints each pipeline's cost per extra person.
Run: ``python bench/bench_people.py [--rounds N] [--compile] [--large | --per-person]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
GROUPS = {"~1 person": ("mp", "coco"), "~4 people": ("tue",), "~10 people": ("group", "street")}


def run_and_score(kind: str, model, img: np.ndarray, labels) -> tuple[float, int]:
    """(ms the pipeline took on ``img``, labelled people it found); the scoring is not timed."""
    from abspose.detect2d import _keypoint_boxes
    from abspose.training.people_recall import score_image

    t0 = time.perf_counter()
    out = model(img)
    ms = (time.perf_counter() - t0) * 1000
    if kind == "ours":
        boxes = _keypoint_boxes(out.landmarks, out.visibility).numpy()
    else:
        h, w = img.shape[:2]
        boxes = np.array(
            [
                [min(p.x for p in lm) * w, min(p.y for p in lm) * h, max(p.x for p in lm) * w, max(p.y for p in lm) * h]
                for lm in (out or [])
            ]
        ).reshape(-1, 4)
    return ms, score_image(labels, boxes, img.shape[:2]).found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10, help="passes over each group's images (frames per image)")
    ap.add_argument("--compile", action="store_true", help="torch.compile NanoDet and the landmark model (~2 min)")
    ap.add_argument("--large", action="store_true", help="also 1920x1080 to 3840x2160 frames (mosaics)")
    ap.add_argument(
        "--per-person", action="store_true", help="instead: the cost of each extra person (1-4 copies of one person)"
    )
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"bench: {DATA} not found (needs ../shared/data beside the repository)")
    torch.set_num_threads(os.cpu_count() or 1)
    import mediapipe as mp

    from abspose.detect2d import BlazePose, Options
    from abspose.precision import bf16_is_fast
    from abspose.training.people_recall import load_labels, mosaic, read_labelled_image

    labelled = [(lab, read_labelled_image(lab, DATA)) for lab in load_labels()]
    image = BlazePose("cpu", compile=args.compile)
    always = BlazePose("cpu", options=Options(adaptive_tiles=False), compile=args.compile)
    track = BlazePose("cpu", options=Options(tracking=True, detect_every=10), compile=args.compile)
    # NanoDet in bfloat16 (``bf16``), where this CPU computes it natively
    bf16 = BlazePose("cpu", compile=args.compile, bf16=True) if bf16_is_fast("cpu") else None

    def tasks(video: bool):
        from mediapipe.tasks import python as mpt
        from mediapipe.tasks.python import vision

        from abspose.models.blazepose_weights import tasks_bundle

        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        opts = vision.PoseLandmarkerOptions(
            base_options=mpt.BaseOptions(model_asset_buffer=tasks_bundle()), num_poses=10, running_mode=mode
        )
        lm = vision.PoseLandmarker.create_from_options(opts)
        clock = iter(range(0, 10**9, 33))

        def run(img: np.ndarray):
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=img)
            return (lm.detect_for_video(frame, next(clock)) if video else lm.detect(frame)).pose_landmarks

        return run

    # tracking rows: each image held for `rounds` frames (a scene at camera rate), the trackers reset between
    runs = {
        "ours IMAGE": ("ours", image, False),
        "ours IMAGE, tiles always": ("ours", always, False),
        **({"ours IMAGE, bf16 NanoDet": ("ours", bf16, False)} if bf16 is not None else {}),
        "mediapipe IMAGE": ("mp", tasks(False), False),
        "ours tracking": ("ours", track, True),
        "mediapipe VIDEO": ("mp", tasks(True), True),
    }
    print(
        f"# people found and ms/frame, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{'compiled' if image.compiled else 'eager'} fp32, CPU\n"
    )
    if args.per_person:
        per_person(labelled, runs, args.rounds, fresh_video=lambda: tasks(True))
        return 0
    print("| images | pipeline | ms/frame (median) | people found / labelled | ms per person found | peer/ours |")
    print("|---|---|---|---|---|---|")
    for group, prefixes in GROUPS.items():
        items = [(lab, img) for lab, img in labelled if lab.key.split("_")[0] in prefixes]
        labelled_people = sum(len(lab.visible) for lab, _ in items)
        stats = {}
        for name, (kind, model, held) in runs.items():
            times, hits = [], []
            order = (
                [(r, item) for item in items for r in range(args.rounds)]
                if held
                else [(r, item) for r in range(args.rounds) for item in items]
            )
            for r, (lab, img) in order:
                if kind == "ours" and held and r == 0:
                    model.reset()
                ms, n = run_and_score(kind, model, img, lab)
                times.append(ms)
                if r == args.rounds - 1:
                    hits.append(n)
            ms = statistics.median(times)
            stats[name] = (ms, sum(hits))
        for name in runs:
            ms, hits = stats[name]
            peer = {
                "ours IMAGE": "mediapipe IMAGE",
                "ours IMAGE, tiles always": "mediapipe IMAGE",
                "ours IMAGE, bf16 NanoDet": "mediapipe IMAGE",
                "ours tracking": "mediapipe VIDEO",
            }.get(name)
            ratio = f"{stats[peer][0] / ms:.2f}" if peer else ""
            per = f"{ms / max(hits / len(items), 1e-9):.1f}" if hits else "–"
            print(f"| {group} | {name} | {ms:.1f} | {hits}/{labelled_people} | {per} | {ratio} |")
    if args.large:
        street = [(lab, img) for lab, img in labelled if lab.key.startswith("street")]
        coarse = BlazePose("cpu", options=Options(tile_max=0.0), compile=args.compile)
        large = {"ours IMAGE": ("ours", image), "ours IMAGE, tiles of the short side": ("ours", coarse)}
        large["mediapipe IMAGE"] = runs["mediapipe IMAGE"][:2]
        print("\n| frame | pipeline | ms/frame (median) | people found / labelled | ms per person found | peer/ours |")
        print("|---|---|---|---|---|---|")
        for n in (2, 3, 4):
            img, lab = mosaic(street, n)
            stats = {}
            for name, (kind, model) in large.items():
                times = [run_and_score(kind, model, img, lab) for _ in range(args.rounds)]
                stats[name] = (statistics.median(t for t, _ in times), times[-1][1])
            for name, (ms, hits) in stats.items():
                ratio = f"{stats['mediapipe IMAGE'][0] / ms:.2f}" if name != "mediapipe IMAGE" else ""
                per = f"{ms / hits:.1f}" if hits else "–"
                frame = f"{img.shape[1]}x{img.shape[0]} ({n}x{n} street frames)"
                print(f"| {frame} | {name} | {ms:.1f} | {hits}/{len(lab.visible)} | {per} | {ratio} |")
    return 0


def per_person(labelled, runs: dict, rounds: int, fresh_video) -> None:
    """ms/frame against people found on frames of 1-4 copies of the business portrait side by side (the one
    labelled image of which mediapipe finds every copy), and each pipeline's cost per extra person: the
    least-squares slope of ms/frame over people found. Tracking modes start afresh on each frame size (ours
    reset, a new mediapipe VIDEO landmarker from ``fresh_video()``) and hold it for ``rounds`` frames; the
    other pipelines see each frame once untimed first."""
    lab, img = next((lab, img) for lab, img in labelled if lab.key == "mp_business")
    w = img.shape[1]
    print("\n| pipeline | ms/frame at 1, 2, 3, 4 copies (people found) | ms per extra person |")
    print("|---|---|---|")
    for name, (kind, model, held) in runs.items():
        if "tiles always" in name or "bf16" in name:
            continue
        found, ms = [], []
        for n in range(1, 5):
            frame = np.ascontiguousarray(np.concatenate([img] * n, 1))
            shifted = {
                part: np.concatenate([getattr(lab, part).reshape(-1, 4) + [k * w, 0, k * w, 0] for k in range(n)])
                for part in ("visible", "partial", "objects")
            }
            row = dataclasses.replace(lab, key=f"{lab.key}_x{n}", **shifted)
            times, hits = [], 0
            if held and kind == "ours":
                model.reset()
            elif held:
                model = fresh_video()
            else:
                model(frame)  # warm-up at this size
            for _ in range(rounds):
                t, hits = run_and_score(kind, model, frame, row)
                times.append(t)
            found.append(hits)
            ms.append(statistics.median(times))
        slope = np.polyfit(found, ms, 1)[0] if len(set(found)) > 1 else float("nan")
        cells = ", ".join(f"{m:.1f} ({f})" for m, f in zip(ms, found, strict=True))
        print(f"| {name} | {cells} | {slope:.1f} |")


if __name__ == "__main__":
    raise SystemExit(main())
