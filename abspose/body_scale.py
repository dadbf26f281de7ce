"""A tracked person's metric scale: what depth or the floor measured of them, kept for the frames where only
the lifter sees them.

The lifter's distance is off by the person's body size (a steady factor per person) plus a frame-to-frame
part. :class:`BodyScale` keeps the steady factor as a log-scale estimate with its variance (a scalar Kalman
filter with a slow random walk), updated by every measured scale (depth, ground contact) and applied to the
detections that only the lifter placed (depth dropout, beyond depth range, feet hidden). A ground contact
that disagrees with a confident track scale is taken for a foot off the floor (jump, step) and replaced by
it. Scales are factors on the lifted pose about the camera centre; σ are relative; time in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MEASURED_DEPTH, MEASURED_GROUND, LIFTER_ONLY = 0, 1, 2


@dataclass
class BodyScaleConfig:
    frame_sigma: float = 0.03  # the lifter's frame-to-frame scale error about the person's steady factor
    drift: float = 0.01  # per √s: random walk of the steady factor (pose-dependent lifter bias, id swaps)
    gate: float = 10.83  # χ²(1) at 99.9 %: a ground contact this far from the track's scale is refused


class BodyScale:
    """Call :meth:`observe` with each of the track's detections, in time order."""

    def __init__(self, cfg: BodyScaleConfig | None = None) -> None:
        self.cfg = cfg or BodyScaleConfig()
        self.log = math.nan  # log of the steady factor
        self.var = math.inf
        self.t: float | None = None

    @property
    def known(self) -> bool:
        return math.isfinite(self.log)

    def sigma(self) -> float:
        """Relative σ of the scale this track gives a lifter-only detection."""
        return math.sqrt(self.var + self.cfg.frame_sigma**2)

    def observe(self, t: float, scale: float, sigma: float, kind: int) -> tuple[float, float]:
        """The detection's ``scale`` (the factor already applied to its lifted pose) with relative σ ``sigma``,
        measured by ``kind`` (MEASURED_DEPTH, MEASURED_GROUND or LIFTER_ONLY) -> (factor to apply on top, the
        detection's scale σ after it). A refused contact or a lifter-only detection gets the track's scale
        when the track knows it better than the lifter does; a measured one stays as it was."""
        if self.t is not None and self.known:
            self.var += self.cfg.drift**2 * max(0.0, t - self.t)
        self.t = t
        if not (math.isfinite(scale) and scale > 0 and math.isfinite(sigma) and sigma > 0):
            return 1.0, sigma
        z, r = math.log(scale), sigma**2 + self.cfg.frame_sigma**2
        if kind == LIFTER_ONLY:
            if self.known and self.sigma() < sigma:
                return math.exp(self.log) / scale, self.sigma()
            return 1.0, sigma
        if kind == MEASURED_GROUND and self.known and (z - self.log) ** 2 > self.cfg.gate * (self.var + r):
            return math.exp(self.log) / scale, self.sigma()  # not standing on the floor after all
        if not self.known:
            self.log, self.var = z, r
        else:
            gain = self.var / (self.var + r)
            self.log += gain * (z - self.log)
            self.var *= 1 - gain
        return 1.0, sigma
