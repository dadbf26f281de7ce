"""Images into the pipeline: any common encoding -> float RGB tensor [3,H,W] in 0..255 on the device.

Encodings are sensor_msgs/Image names: rgb8, bgr8, rgba8, bgra8, mono8, mono16 (and 8UC1/8UC3/16UC1 as
mono/rgb). Anything else, a wrong array shape for the encoding, or an empty image raises ImageError with
what is wrong; the caller logs it and skips the frame.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch

# encoding -> (channels, numpy dtype, channel order to RGB or None for mono)
ENCODINGS: dict[str, tuple[int, type, tuple[int, ...] | None]] = {
    "rgb8": (3, np.uint8, (0, 1, 2)),
    "bgr8": (3, np.uint8, (2, 1, 0)),
    "rgba8": (4, np.uint8, (0, 1, 2)),
    "bgra8": (4, np.uint8, (2, 1, 0)),
    "mono8": (1, np.uint8, None),
    "8UC1": (1, np.uint8, None),
    "8UC3": (3, np.uint8, (0, 1, 2)),
    "mono16": (1, np.uint16, None),
    "16UC1": (1, np.uint16, None),
}


MAX_PIXELS = 64_000_000  # image files larger than this are refused before decoding (decompression bombs)


class ImageError(ValueError):
    """An image the pipeline cannot use; the message says what is wrong."""


def default_encoding(shape: tuple[int, ...], sixteen_bit: bool = False) -> str:
    """Encoding for a plain array: HxW -> mono8/mono16, HxWx3 -> rgb8, HxWx4 -> rgba8."""
    if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
        return "mono16" if sixteen_bit else "mono8"
    if len(shape) == 3 and shape[2] in (3, 4):
        return "rgb8" if shape[2] == 3 else "rgba8"
    raise ImageError(f"cannot tell the encoding of an array of shape {shape}")


_TORCH_DTYPES = {np.uint8: torch.uint8, np.uint16: torch.uint16}


def to_rgb_tensor(
    image: np.ndarray | torch.Tensor, encoding: str | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """HxW[xC] image -> float32 RGB [3,H,W] in 0..255 on ``device`` (16-bit mono scaled to 0..255).

    The result is a [3,H,W] view of HxWx3 memory (``permute(1, 2, 0)`` gives it back without a copy)."""
    t = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image))
    enc = encoding or default_encoding(tuple(t.shape), t.dtype == torch.uint16)
    if enc not in ENCODINGS:
        raise ImageError(f"unsupported image encoding '{enc}' (supported: {', '.join(ENCODINGS)})")
    channels, dtype, order = ENCODINGS[enc]
    shape = tuple(t.shape)
    if len(shape) < 2 or shape[0] == 0 or shape[1] == 0:
        raise ImageError(f"empty image (shape {shape})")
    if not (len(shape) == 3 and shape[2] == channels) and not (channels == 1 and len(shape) == 2):
        raise ImageError(f"'{enc}' needs {channels} channel(s), the image has shape {shape}")
    if t.dtype != _TORCH_DTYPES[dtype]:
        raise ImageError(f"'{enc}' needs {np.dtype(dtype).name} pixels, got {t.dtype}")
    t = t.to(device).float()
    if dtype == np.uint16:
        t = t * (255.0 / 65535.0)
    if t.ndim == 2:
        t = t[..., None]
    if order is None:
        t = t.expand(-1, -1, 3).contiguous()
    elif channels != 3 or order != (0, 1, 2):
        t = t[..., list(order)]
    return t.permute(2, 0, 1)


def rgb8_of(image: np.ndarray | torch.Tensor, encoding: str | None = None) -> np.ndarray | None:
    """A non-empty HxWx3 uint8 numpy frame in ``rgb8`` or ``bgr8`` (None: rgb8) as contiguous RGB uint8 HxWx3
    without a float copy of it; None for any other input (:func:`to_rgb_tensor` checks and converts those)."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        return None
    enc = encoding or "rgb8"
    if min(image.shape[:2]) == 0 or enc not in ("rgb8", "bgr8"):
        return None
    return np.ascontiguousarray(image if enc == "rgb8" else image[..., ::-1])


def tensor_to_rgb8(rgb: torch.Tensor) -> np.ndarray:
    """[3,H,W] 0..255 tensor (as :func:`to_rgb_tensor` gives) -> contiguous RGB uint8 HxWx3 numpy."""
    return rgb.permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).contiguous().cpu().numpy()


def to_rgb8(image: np.ndarray, encoding: str | None = None) -> np.ndarray:
    """Any supported image -> RGB uint8 HxWx3 numpy (for overlays)."""
    return tensor_to_rgb8(to_rgb_tensor(image, encoding))


DARK_SAMPLES = 16_384  # pixels whose grey levels tell a dark frame
# the shares of a dark frame that lamps, windows or lit people may take, tried in turn: the bright end of its
# dark part is the highest of these percentiles below the dark level (the 99.5th: no lights)
LIGHTS_SHARES = (0.005, 0.05, 0.25)
LIGHTS_CONTRAST = 4.0  # lights are at least this x the dark level bright (99.5th percentile)
LIT_PERSON_SHARE = 0.25  # the share of its person box that a lit person covers at least


def dark_levels(rgb: torch.Tensor, level: float) -> tuple[float, float, bool] | None:
    """(black, gain, lights) that stretch a dark frame's grey levels to 0..255, or None for a frame that is not
    dark.

    rgb: [3,H,W] 0..255 (any dtype). Grey levels: the channel mean over a grid of ~16,000 pixels. Dark: its
    bright end — the 99.5th percentile — lies below ``level``, as in a dim room or a 10/12-bit mono16 camera
    read at 16 bits (lights False); or the 95th or else the 75th percentile lies below ``level`` and the 99.5th
    at least 4 x above it (lights True: lamps, windows or lit people on at most a quarter of the frame, which
    the stretch would clip; a frame merely dim, its brightest pixels just above ``level``, is not dark).
    black = the 0.5th percentile; gain maps black..that bright end to 0..255."""
    step = max(1, round(math.sqrt(rgb.shape[1] * rgb.shape[2] / DARK_SAMPLES)))
    # a histogram of the channel sums (0..765, a third of a grey level apart): no sort
    sums = rgb[:, ::step, ::step].float().sum(dim=0).round().clamp(0, 765).long().flatten()
    cumulative = torch.bincount(sums, minlength=766).cumsum(0).double()
    shares = torch.tensor((0.005, *(1.0 - s for s in LIGHTS_SHARES)), dtype=torch.float64, device=sums.device)
    black, *ends = (torch.searchsorted(cumulative, shares * sums.numel()).float() / 3.0).tolist()
    bright = ends[0]
    for k, end in enumerate(ends):
        if end < level and (k == 0 or bright >= LIGHTS_CONTRAST * level):
            return black, 255.0 / max(end - black, 1.0), k > 0
    return None


def dark_crops(crops: torch.Tensor, level: float, inside: torch.Tensor) -> torch.Tensor:
    """[N] bool: crops [N,3,S,S] (0..255) of people in the dark part of a frame with lights — the brightest
    quarter of their pixels ``inside`` [N,S,S] (their person box) below ``level``, where a lit person covers
    more than a quarter of its box. Every 4th pixel both ways is read."""
    grey = crops[:, :, ::4, ::4].float().mean(dim=1).flatten(1)
    inside = inside[:, ::4, ::4].flatten(1)
    count = inside.sum(dim=1)
    ranked = torch.where(inside, grey, torch.full_like(grey, math.inf)).sort(dim=1).values
    at = ((count - 1).clamp(min=0).float() * (1.0 - LIT_PERSON_SHARE)).round().long()
    return ranked.gather(1, at[:, None])[:, 0] < level  # no pixel inside: inf, not dark


def stretch_levels(
    rgb: torch.Tensor, rgb8: np.ndarray | None, black: float, gain: float
) -> tuple[torch.Tensor, np.ndarray | None]:
    """(rgb - black) x gain clipped to 0..255, for the float [3,H,W] tensor or, when ``rgb8`` (its HxWx3 uint8
    frame) is given, for that frame through a 256-entry table (the tensor returned is its [3,H,W] view)."""
    if rgb8 is None:
        return ((rgb - black) * gain).clamp(0.0, 255.0), None
    table = np.clip(np.round((np.arange(256) - black) * gain), 0, 255).astype(np.uint8)
    out = table[rgb8]
    return torch.from_numpy(out).permute(2, 0, 1), out


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 HxWx3 from an image file; ValueError naming the file when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings(), Image.open(path) as im:  # lazy: the header only
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked here
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ValueError(
                    f"{path}: image is {w}x{h} = {w * h / 1e6:.0f} MP, more than {MAX_PIXELS / 1e6:.0f} MP"
                )
            return np.array(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from exc
