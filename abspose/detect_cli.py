"""`abspose detect`: 2D keypoints of every person in image files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from abspose.cli import command, number
from abspose.image import read_image


def _detect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--json", type=Path, help="write keypoints of every image to this JSON file")
    p.add_argument("--overlay", type=Path, help="overlay picture (one image) or folder for overlays (several)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--max-people", type=number(int, 0), default=0, help="at most this many people per image (0: all)")
    p.add_argument(
        "--detector", choices=("nanodet", "blazepose"), default="nanodet", help="person proposals (docs/detect2d.md)"
    )
    p.add_argument(
        "--min-score", type=number(float, 0, 1), help="person detector threshold (default: 0.3 nanodet, 0.5 blazepose)"
    )


@command("detect", "2D keypoints of every person in images (BlazePose in torch)", _detect_args)
def detect(args: argparse.Namespace) -> int:
    from abspose import skeleton
    from abspose.detect2d import BlazePose, Options
    from abspose.overlay import draw_skeletons

    opts = Options(detector=args.detector, max_people=args.max_people)
    if args.min_score is not None:
        opts.min_person_score = opts.min_detection_score = args.min_score
    model = BlazePose(args.device, options=opts)
    results, failed = [], 0
    for path in args.images:
        try:
            img = read_image(path)
        except ValueError as exc:
            print(f"abspose detect: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        poses = model(img).cpu()
        people = []
        for i in range(len(poses)):
            kp, conf = poses.keypoints[i].numpy(), poses.confidence[i].numpy()
            people.append(
                {
                    "score": round(float(poses.score[i]), 4),
                    "roi": dict(
                        zip(("cx", "cy", "side", "angle"), poses.rois[i].round(decimals=3).tolist(), strict=True)
                    ),
                    "keypoints": {
                        n: None
                        if not np.isfinite(kp[j]).all()
                        else [round(float(kp[j, 0]), 2), round(float(kp[j, 1]), 2), round(float(conf[j]), 3)]
                        for j, n in enumerate(skeleton.JOINT_NAMES)
                    },
                    "blazepose": np.concatenate(
                        [
                            poses.landmarks[i].numpy(),
                            poses.visibility[i].numpy()[:, None],
                            poses.presence[i].numpy()[:, None],
                        ],
                        axis=1,
                    )
                    .round(3)
                    .tolist(),
                }
            )
        results.append({"image": str(path), "width": img.shape[1], "height": img.shape[0], "people": people})
        print(f"{path}: {len(people)} people")
        if args.overlay:
            out = args.overlay
            if len(args.images) > 1:
                out.mkdir(parents=True, exist_ok=True)
                out = out / f"{path.stem}_overlay.png"
            labels = [f"{p['score']:.2f}" for p in people]
            draw_skeletons(img, poses.keypoints.numpy(), poses.confidence.numpy(), labels).save(out)
    if args.json:
        doc = {
            "joint_names": list(skeleton.JOINT_NAMES),
            "blazepose_columns": ["u", "v", "visibility", "presence"],
            "units": "pixels of each image",
            "images": results,
        }
        args.json.write_text(json.dumps(doc, indent=1))
    return 2 if failed else 0
