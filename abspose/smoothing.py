"""One-Euro filter (Casiez et al., CHI 2012) over a whole skeleton at once.

Each joint coordinate is low-pass filtered with a cut-off that rises with the joint's speed: little jitter
when a person stands still, little lag when they move. Units: positions in metres, time in seconds,
cut-offs in Hz, ``beta`` in Hz per (m/s). NaN joints pass through as NaN and do not disturb the state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class OneEuroConfig:
    min_cutoff: float = 1.0  # Hz: cut-off at rest (lower = smoother, more lag)
    beta: float = 0.8  # Hz per m/s: how fast the cut-off rises with speed
    d_cutoff: float = 1.0  # Hz: cut-off of the speed estimate


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters arrays of shape [J, D]; speed (for the adaptive cut-off) is the norm over D per joint."""

    def __init__(self, cfg: OneEuroConfig | None = None) -> None:
        self.cfg = cfg or OneEuroConfig()
        self.x: np.ndarray | None = None  # last filtered value [J, D]
        self.dx: np.ndarray | None = None  # last filtered derivative [J, D] (units/s)
        self.t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filtered value of ``x`` observed at time ``t`` (s)."""
        x = np.asarray(x, dtype=np.float64)
        valid = np.isfinite(x).all(-1, keepdims=True)
        if self.x is None or self.t is None or t <= self.t:
            self.x = np.where(valid, x, np.nan)
            self.dx = np.zeros_like(x)
            self.t = t
            return self.x.copy()
        dt = t - self.t
        fresh = valid & ~np.isfinite(self.x).all(-1, keepdims=True)  # joint (re)appears: restart it
        dx = (x - self.x) / dt
        dx_hat = self.dx + _alpha(self.cfg.d_cutoff, dt) * (dx - self.dx)
        speed = np.linalg.norm(dx_hat, axis=-1, keepdims=True)
        a = _alpha(self.cfg.min_cutoff + self.cfg.beta * np.nan_to_num(speed), dt)
        x_hat = self.x + a * (x - self.x)
        self.x = np.where(fresh, x, np.where(valid, x_hat, self.x))
        self.dx = np.where(valid & ~fresh, dx_hat, np.where(fresh, 0.0, self.dx))
        self.t = t
        return np.where(valid, self.x, np.nan)
