"""Draw examples of every made posture kind (docs/postures.png): one row per kind, six postures per row,
each as a side view (facing right) and a front view; red left, blue right, green dot the centre of mass.

Run: ``python tools/plot_postures.py [--data ../shared/data] [--seed 0] [--output docs/postures.png]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from abspose import skeleton as sk
from abspose.training import postures
from abspose.training.dataset import load_mocap_set

PER_KIND = 6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "docs" / "postures.png"))
    args = ap.parse_args()
    if not (Path(args.data) / "mocap").is_dir():
        print(f"plot_postures: {args.data}/mocap not found (--data: the folder holding mocap/)", file=sys.stderr)
        return 2
    train = load_mocap_set(args.data).split("train")
    g = torch.Generator().manual_seed(args.seed)
    kinds = postures.KINDS
    fig, axes = plt.subplots(len(kinds), 2 * PER_KIND, figsize=(2 * PER_KIND, 1.0 * len(kinds)))
    for row, kind in enumerate(kinds):
        lower, upper = (train[torch.randint(len(train), (PER_KIND,), generator=g)] for _ in "lu")
        poses = postures.make(kind, lower, upper, g)
        heading, _ = postures.frames(poses)  # each posture in its heading frame: x left, y up, z forward
        poses = poses @ heading
        x, z = poses[..., 0], poses[..., 2]
        com = postures.centre_of_mass(poses)
        for k in range(PER_KIND):
            for view, horizontal, com_h in ((0, z[k], com[k, 2]), (1, x[k], com[k, 0])):
                ax = axes[row, 2 * k + view]
                for a, b in sk.BONE_INDEX:
                    colour = "red" if "left" in sk.JOINT_NAMES[b] else "blue"
                    ax.plot(horizontal[[a, b]], poses[k, [a, b], 1], color=colour, lw=1)
                ax.plot([com_h], [com[k, 1]], "o", color="green", ms=2)
                ax.axhline(0, color="grey", lw=0.5)
                ax.set_xlim(float(horizontal.mean()) - 1.0, float(horizontal.mean()) + 1.0)
                ax.set_ylim(-0.05, 2.6)
                ax.set_aspect("equal")
                ax.axis("off")
        axes[row, 0].set_title(kind, fontsize=6, loc="left")
    fig.tight_layout(pad=0.2)
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
