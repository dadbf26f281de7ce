"""The absolute 3D lifter: 2D keypoints (+ optional depth readouts) + intrinsics -> camera-frame joints.

Method (PoseLifter, with depthpose's depth features):

- **Normalization** (:func:`features`): keypoints p (undistorted pixels) minus the principal point;
  location u = mean of the visible points, scale σ = RMS distance of the visible points from u (missing
  joints are masked out of both, never zeroed into them); the pose enters as (p − c − u)/σ with its
  visibility mask, the location and scale as u/f, log(σ/f) and log σ (σ in pixels). Canonical depth
  Z/f ≈ body size / σ does not depend on f, which is what lets one model serve every camera.
- **Depth features** (optional, all zero when absent): per joint validity and surface depth minus the
  median valid readout (metres, clipped), plus log(median/f) — the same canonical units as the output.
- **Net**: residual MLP (Martinez/depthpose): Linear -> blocks of 2 × [Linear, BatchNorm, ReLU, Dropout].
- **Outputs**: log canonical root depth log(Z/f) (so Z > 0), the root's pixel as an offset from u in units
  of σ, root-relative joints (metres, camera axes) and per joint the expected absolute error (metres).
- **Reconstruction** (:meth:`Lifter.forward`): Z = f·Z̃ with f = sqrt(fx·fy); X, Y by back-projecting the
  root pixel at depth Z; joints = root + relative.
- **Flip averaging** (inference, ``Lifter.flip_average``, on by default): the keypoints mirrored about the
  principal point's column (left and right swapped) show the mirrored person under the same K; the net
  lifts both in one batch and the mirrored answer, mirrored back (X → −X), is averaged with the direct one.

Frames and units: camera optical frame (x right, y down, z forward), metres; keypoints in pixels of the
image the intrinsics K belong to, undistorted (``CameraModel.undistort``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from abspose import skeleton as sk

J_IN = len(sk.INPUT_JOINTS)
J_OUT = sk.NUM_JOINTS
LOG_Z_OFFSET = 5.5  # log(Z/f) of a person ~2.5 m away seen at f ~ 600 px is about -5.5
DEPTH_CLIP = 1.5  # metres, relative depth features are clipped to this
DEFAULT_WEIGHTS = "lifter.safetensors"


@dataclass
class LifterConfig:
    """Architecture and feature switches (stored in the checkpoint's metadata)."""

    width: int = 1024
    blocks: int = 2
    dropout: float = 0.1
    loc_scale: bool = True  # feed location/scale features (ablation: False)
    canonical: bool = True  # predict log(Z/f); ablation: log Z in metres
    focal_features: bool = True  # location/scale also relative to f (u/f, σ/f); False: pixels only (PoseLifter)
    depth_inputs: bool = True


def n_features(cfg: LifterConfig) -> int:
    return 3 * J_IN + (4 if cfg.loc_scale else 0) + (2 * J_IN + 2 if cfg.depth_inputs else 0)


N_OUT = 1 + 2 + 3 * (J_OUT - 1) + J_OUT
NON_ROOT = [i for i in range(J_OUT) if i != sk.PELVIS]  # joints whose relative position the net outputs


def normalize(keypoints: torch.Tensor, mask: torch.Tensor, K: torch.Tensor):
    """Centred pose (p − c − u)/σ [B, J, 2] (0 where masked), u [B, 2] px, σ [B] px (principal point removed)."""
    m = mask.to(keypoints.dtype)[..., None]
    p = torch.where(mask[..., None], keypoints - K[:, None, :2, 2], torch.zeros_like(keypoints))
    n = m.sum(1).clamp(min=1)
    u = (p * m).sum(1) / n
    sigma = ((((p - u[:, None]) ** 2).sum(-1, keepdim=True) * m).sum(1) / n).sqrt().squeeze(-1).clamp(min=1e-3)
    return (p - u[:, None]) / sigma[:, None, None] * m, u, sigma


def focal(K: torch.Tensor) -> torch.Tensor:
    """f = sqrt(fx·fy) [B] (pixels)."""
    return torch.sqrt(K[:, 0, 0] * K[:, 1, 1])


def features(
    keypoints: torch.Tensor, mask: torch.Tensor, K: torch.Tensor, depth: torch.Tensor | None, cfg: LifterConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network input [B, n_features] plus u [B, 2] and σ [B] (pixels) for the reconstruction."""
    pose, u, sigma = normalize(keypoints, mask, K)
    f = focal(K)
    parts = [pose.flatten(1), mask.to(pose.dtype)]
    if cfg.loc_scale and cfg.focal_features:
        parts += [u / f[:, None], (torch.log(sigma / f) + 2.0)[:, None], (torch.log(sigma) - 5.0)[:, None]]
    elif cfg.loc_scale:  # PoseLifter's own features: nothing tells the net the focal length
        parts += [u / 1000.0, torch.zeros_like(sigma)[:, None], (torch.log(sigma) - 5.0)[:, None]]
    if cfg.depth_inputs:
        b = keypoints.shape[0]
        if depth is None:
            parts += [torch.zeros(b, 2 * J_IN + 2, device=pose.device, dtype=pose.dtype)]
        else:
            valid = torch.isfinite(depth) & (depth > 0) & mask
            d = torch.where(valid, depth, torch.full_like(depth, float("nan")))
            med = torch.nanmedian(d, dim=1).values
            has = valid.any(1)
            med = torch.where(has, med, torch.ones_like(med))
            rel = torch.where(valid, (d - med[:, None]).clamp(-DEPTH_CLIP, DEPTH_CLIP), torch.zeros_like(d))
            logz = torch.where(has, torch.log(med / f) + LOG_Z_OFFSET, torch.zeros_like(med))
            parts += [valid.to(pose.dtype), rel, logz[:, None], has.to(pose.dtype)[:, None]]
    return torch.cat(parts, 1), u, sigma


class _Block(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(width, width),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


@dataclass
class LiftResult:
    """joints [B, 18, 3] m (camera frame), root [B, 3] m, canonical_depth [B] (Z/f, m/px), relative
    [B, 18, 3] m (root-relative), uncertainty [B, 18] m (expected joint error), root_pixel [B, 2] px."""

    joints: torch.Tensor
    root: torch.Tensor
    canonical_depth: torch.Tensor
    relative: torch.Tensor
    uncertainty: torch.Tensor
    root_pixel: torch.Tensor


class Lifter(nn.Module):
    """Residual MLP lifter. ``forward(keypoints [B,17,2] px, mask [B,17], K [B,3,3], depth [B,17] m|None)``.

    ``flip_average``: in eval mode, average with the lifted horizontal mirror (see the module docstring)."""

    def __init__(self, cfg: LifterConfig | None = None, flip_average: bool = True) -> None:
        super().__init__()
        self.cfg = cfg or LifterConfig()
        self.flip_average = flip_average
        w = self.cfg.width
        self.inp = nn.Sequential(nn.Linear(n_features(self.cfg), w), nn.BatchNorm1d(w), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[_Block(w, self.cfg.dropout) for _ in range(self.cfg.blocks)])
        self.out = nn.Linear(w, N_OUT)

    def raw(self, x: torch.Tensor, bf16: bool = False) -> torch.Tensor:
        """Net output [B, N_OUT]; ``bf16``: input layer and blocks under bfloat16 autocast (training), the
        output layer in fp32."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            h = self.blocks(self.inp(x))
        return self.out(h.float())

    def forward(
        self, keypoints: torch.Tensor, mask: torch.Tensor, K: torch.Tensor, depth: torch.Tensor | None = None
    ) -> LiftResult:
        if self.flip_average and not self.training:
            return self._flip_averaged(keypoints, mask, K, depth)
        x, u, sigma = features(keypoints, mask, K, depth, self.cfg)
        return self.decode(self.raw(x), u, sigma, K)

    def _flip_averaged(
        self, keypoints: torch.Tensor, mask: torch.Tensor, K: torch.Tensor, depth: torch.Tensor | None
    ) -> LiftResult:
        """Lift the people and their mirror images in one batch; average (mirror images mirrored back)."""
        b, p_in, p_out = keypoints.shape[0], list(sk.INPUT_FLIP_PERMUTATION), list(sk.FLIP_PERMUTATION)
        mirrored = torch.stack([2 * K[:, None, 0, 2] - keypoints[..., 0], keypoints[..., 1]], -1)[:, p_in]
        both = (torch.cat([keypoints, mirrored]), torch.cat([mask, mask[:, p_in]]), torch.cat([K, K]))
        depth2 = None if depth is None else torch.cat([depth, depth[:, p_in]])
        x, u, sigma = features(*both, depth2, self.cfg)
        r = self.decode(self.raw(x), u, sigma, both[2])
        sx = torch.tensor([-1.0, 1.0, 1.0], device=x.device, dtype=x.dtype)
        root_px = torch.stack([2 * K[:, 0, 2] - r.root_pixel[b:, 0], r.root_pixel[b:, 1]], -1)
        return LiftResult(
            (r.joints[:b] + r.joints[b:, p_out] * sx) / 2,
            (r.root[:b] + r.root[b:] * sx) / 2,
            (r.canonical_depth[:b] + r.canonical_depth[b:]) / 2,
            (r.relative[:b] + r.relative[b:, p_out] * sx) / 2,
            (r.uncertainty[:b] + r.uncertainty[b:, p_out]) / 2,
            (r.root_pixel[:b] + root_px) / 2,
        )

    def decode(self, y: torch.Tensor, u: torch.Tensor, sigma: torch.Tensor, K: torch.Tensor) -> LiftResult:
        b = y.shape[0]
        f = focal(K)
        log_z = y[:, 0] - LOG_Z_OFFSET
        if self.cfg.canonical:
            z_tilde = torch.exp(log_z)
            z = z_tilde * f
        else:  # ablation: the net outputs log Z (metres)
            z = torch.exp(y[:, 0] - 1.0)
            z_tilde = z / f
        root_px = u + sigma[:, None] * y[:, 1:3] + K[:, :2, 2]
        xy = (root_px - K[:, :2, 2]) / torch.stack([K[:, 0, 0], K[:, 1, 1]], -1) * z[:, None]
        root = torch.cat([xy, z[:, None]], 1)
        rel = torch.zeros(b, J_OUT, 3, device=y.device, dtype=y.dtype)
        rel[:, NON_ROOT] = y[:, 3 : 3 + 3 * (J_OUT - 1)].view(b, J_OUT - 1, 3)
        unc = torch.nn.functional.softplus(y[:, 3 + 3 * (J_OUT - 1) :]) + 1e-3
        return LiftResult(root[:, None] + rel, root, z_tilde, rel, unc, root_px)

    # --- checkpoints -------------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> None:
        meta = {
            "config": json.dumps(asdict(self.cfg)),
            "skeleton": sk.SKELETON_NAME,
            "joint_names": json.dumps(sk.JOINT_NAMES),
            "input_joints": json.dumps(sk.INPUT_JOINTS),
        }
        meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()})
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> Lifter:
        """Load a checkpoint (default: the one shipped in the package), in eval mode on ``device``."""
        from safetensors import safe_open

        path = Path(path) if path else Path(str(resources.files("abspose") / "weights" / DEFAULT_WEIGHTS))
        if not path.exists():
            raise FileNotFoundError(f"{path}: lifter checkpoint not found")
        try:
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises several types for truncated / foreign files
            raise ValueError(f"{path}: not a readable safetensors lifter checkpoint ({exc})") from exc
        if json.loads(meta.get("joint_names", "null") or "null") != list(sk.JOINT_NAMES):
            raise ValueError(f"{path}: checkpoint joint set {meta.get('skeleton')!r} is not {sk.SKELETON_NAME}")
        model = cls(LifterConfig(**json.loads(meta["config"])))
        model.load_state_dict({k: v.float() for k, v in state.items()})
        model.metadata = meta  # type: ignore[attr-defined]
        return model.to(device).eval()


def lift(
    model: Lifter,
    keypoints: torch.Tensor,
    confidence: torch.Tensor,
    K: torch.Tensor,
    depth: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> LiftResult:
    """User API. keypoints [N, 17|18, 2] px (undistorted; joint-set order, spine ignored if given),
    confidence [N, 17|18], K [3, 3] or [N, 3, 3], depth [N, 17|18] m surface readouts (NaN invalid) or None.

    Joints with confidence < ``threshold`` or non-finite coordinates are treated as missing. People with
    fewer than 2 usable joints come back as NaN. Runs under ``torch.inference_mode`` on the model's device.
    """
    dev = next(model.parameters()).device
    kp, conf = keypoints.to(dev, torch.float32), confidence.to(dev, torch.float32)
    if kp.shape[1] == J_OUT:
        idx = torch.tensor(sk.INPUT_INDEX, device=dev)
        kp, conf = kp[:, idx], conf[:, idx]
        depth = depth[:, idx.to(depth.device)] if depth is not None else None
    n = kp.shape[0]
    K = K.to(dev, torch.float32)
    K = K.expand(n, 3, 3) if K.dim() == 2 else K
    mask = (conf >= threshold) & torch.isfinite(kp).all(-1)
    kp = torch.where(mask[..., None], kp, torch.zeros_like(kp))
    with torch.inference_mode():
        if n == 0:
            empty = torch.zeros(0, J_OUT, 3, device=dev)
            return LiftResult(empty, empty[:, 0], empty[:, 0, 0], empty, empty[..., 0], empty[:, 0, :2])
        res = model(kp, mask, K, depth.to(dev, torch.float32) if depth is not None else None)
        bad = mask.sum(1) < 2
        if bad.any():
            for name in ("joints", "root", "canonical_depth", "relative", "uncertainty", "root_pixel"):
                t = getattr(res, name)
                t[bad] = float("nan")
    return res
