"""Draw 2D skeletons on an image (debug overlays for the CLI, the offline runner and the node)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from abspose import skeleton

# one colour per person, cycling (RGB)
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)


def draw_skeletons(
    image: np.ndarray,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    labels: list[str] | None = None,
    min_confidence: float = 0.5,
) -> Image.Image:
    """RGB image HxWx3 uint8 + keypoints [N,J,2] px + confidence [N,J] -> PIL image with bones and joints."""
    out = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    radius = max(2, round(max(out.size) / 250))
    for i, (kp, conf) in enumerate(zip(keypoints, confidence, strict=True)):
        colour = PALETTE[i % len(PALETTE)]
        ok = np.isfinite(kp).all(-1) & (conf >= min_confidence)
        for a, b in skeleton.BONE_INDEX:
            if ok[a] and ok[b]:
                draw.line([tuple(kp[a]), tuple(kp[b])], fill=colour, width=radius)
        for j in np.flatnonzero(ok):
            u, v = kp[j]
            draw.ellipse([u - radius, v - radius, u + radius, v + radius], fill=(255, 255, 255), outline=colour)
        if labels and ok.any():
            u, v = kp[ok].min(0)
            draw.text((u, max(0, v - 12)), labels[i], fill=colour)
    return out


def draw_people(image: np.ndarray, people: list, min_confidence: float = 0.5) -> np.ndarray:
    """RGB uint8 HxWx3 with the people seen in it (outputs.Person: keypoints, confidence, id, root) drawn and
    labelled "<id> <distance> m"; coasting people (no keypoints in this image) are left out."""
    seen = [p for p in people if np.isfinite(p.keypoints).any()]
    kp = np.stack([p.keypoints for p in seen]) if seen else np.zeros((0, skeleton.NUM_JOINTS, 2))
    conf = np.stack([p.confidence for p in seen]) if seen else np.zeros((0, skeleton.NUM_JOINTS))
    labels = [f"{p.id} {np.linalg.norm(p.root):.1f} m" for p in seen]
    return np.asarray(draw_skeletons(image, kp, conf, labels, min_confidence))
