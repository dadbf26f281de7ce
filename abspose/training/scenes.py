"""RGB-D test scenes from held-out mocap: a target person, up to two others, a floor and maybe a wall.

The target is an ordinary :func:`abspose.training.synth.synthesize` sample (random robot camera, detector-like 2D
noise, missed joints). Other people stand on the same floor in front of or behind the target and beside
it, so they occlude it or fill its background; the wall stands behind the target. :func:`scene_depth`
renders the scene (:mod:`abspose.training.render`) into a depth camera registered to the colour camera, binned to
at most 848 px wide like a real RGB-D camera's depth stream, with the sensor's faults: what the node
would receive. Frames: camera optical frame, metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from abspose import skeleton as sk
from abspose.camera import CameraModel
from abspose.surface import body_capsules
from abspose.training.noise2d import NoiseModel
from abspose.training.render import SensorModel, render_depth, sense
from abspose.training.synth import Batch, CameraRange, ground_to_camera, retarget, rot_y
from abspose.training.train import sample_batch

FEET = [sk.JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]


@dataclass
class SceneRange:
    """How scenes are built (metres, probabilities)."""

    others: tuple[float, float, float] = (0.3, 0.45, 0.25)  # P(0, 1, 2 other people)
    along: tuple[float, float] = (-2.5, 3.0)  # others' ground offset from the target along the view
    lateral: float = 1.5  # ... and sideways, either way
    min_gap: float = 0.5  # between the target's and another's pelvis, on the ground
    wall: float = 0.7  # probability of a wall behind the target
    wall_gap: tuple[float, float] = (0.3, 5.0)  # target -> wall


@dataclass
class Scenes:
    """S scenes: the targets as a :class:`~abspose.training.synth.Batch`, other people ``others`` [S, 2, 18, 3] (camera
    frame, NaN = nobody) and planes [S, 2, 4] (floor, wall as n·p = d in the camera frame; NaN = none).
    ``girth`` [S, 3] (target, others): each body's capsule radii as a factor of :mod:`abspose.surface`'s,
    the model the fusion assumes; None = all 1 (every body exactly that model)."""

    targets: Batch
    others: torch.Tensor
    planes: torch.Tensor
    girth: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.targets)


def make_scenes(
    poses: torch.Tensor,
    n: int,
    seed: int,
    noise: NoiseModel,
    cams: CameraRange | None = None,
    rng: SceneRange | None = None,
) -> Scenes:
    """``n`` scenes from mocap poses [P, 18, 3] (world, Y up, floor y = 0), reproducible from ``seed``."""
    cams, rng = cams or CameraRange(), rng or SceneRange()
    g = torch.Generator(device=poses.device).manual_seed(seed)
    t = sample_batch(poses, n, noise, cams, None, g)
    dev, dt = t.joints.device, t.joints.dtype

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, device=dev, generator=g, dtype=dt)

    # others: retargeted poses, any facing, pelvis over a ground point near the target
    idx = torch.randint(poses.shape[0], (n * 2,), device=dev, generator=g)
    body, _ = retarget(poses[idx], g)
    ground = body[:, sk.PELVIS].clone()
    ground[:, 1] = 0
    body = (body - ground[:, None]) @ rot_y(rand(n * 2) * 2 * math.pi).transpose(1, 2)
    body[..., 1] -= body[:, FEET, 1].amin(1, keepdim=True)  # lowest foot on the floor
    body = body.view(n, 2, -1, 3)
    view = torch.stack([t.shift[:, 0], torch.zeros_like(t.shift[:, 0]), t.shift[:, 2]], -1)
    dist = view.norm(dim=-1, keepdim=True)
    u = view / dist  # camera -> target on the ground
    v = torch.stack([-u[:, 2], torch.zeros_like(u[:, 0]), u[:, 0]], -1)
    along = rng.along[0] + (rng.along[1] - rng.along[0]) * rand(n, 2, 1)
    side = (2 * rand(n, 2, 1) - 1) * rng.lateral
    offset = along * u[:, None] + side * v[:, None]
    gap = offset.norm(dim=-1, keepdim=True)
    offset = offset * (rng.min_gap / gap.clamp(min=1e-6)).clamp(min=1)
    world = body + offset[:, :, None]
    others = ground_to_camera(world.view(n, -1, 3), t.rotation, t.shift).view(n, 2, -1, 3)
    count = torch.multinomial(torch.tensor(rng.others, device=dev), n, replacement=True, generator=g)
    present = (torch.arange(2, device=dev)[None] < count[:, None]) & (others[..., 2] > 0.3).all(-1)
    others = torch.where(present[..., None, None], others, torch.full_like(others, float("nan")))
    # floor (ground y = 0) and wall (normal u, behind the target) in the camera frame: n_c = R F n_g,
    # d = n_g · shift (see synth.ground_to_camera)
    flip = torch.tensor((-1.0, -1.0, 1.0), device=dev, dtype=dt)
    up = torch.tensor((0.0, 1.0, 0.0), device=dev, dtype=dt).expand(n, 3)
    floor_n = (t.rotation @ (flip * up)[..., None])[..., 0]
    wall_n = (t.rotation @ (flip * u)[..., None])[..., 0]
    wall_d = dist[:, 0] + rng.wall_gap[0] + (rng.wall_gap[1] - rng.wall_gap[0]) * rand(n)
    wall = torch.cat([wall_n, wall_d[:, None]], -1)
    wall = torch.where((rand(n) < rng.wall)[:, None], wall, torch.full_like(wall, float("nan")))
    # the floor under the target's lowest foot (bone lengths were changed, the pelvis height was not)
    floor_d = t.shift[:, 1] + ((t.joints[:, FEET] * floor_n[:, None]).sum(-1) - t.shift[:, 1:2]).amin(1)
    planes = torch.stack([torch.cat([floor_n, floor_d[:, None]], -1), wall], 1)
    others = others + ((floor_d - t.shift[:, 1])[:, None] * floor_n)[:, None, None]  # on that floor too
    return Scenes(t, others, planes)


def vary_girth(scenes: Scenes, sd: float, seed: int) -> Scenes:
    """The same scenes with every body's girth drawn as exp(N(0, sd²)) × the capsule model's (people differ
    in build; the fusion's surface model does not know by how much)."""
    g = torch.Generator(device=scenes.others.device).manual_seed(seed)
    z = torch.randn(len(scenes), 3, device=scenes.others.device, generator=g, dtype=scenes.others.dtype)
    return replace(scenes, girth=torch.exp(sd * z))


def cameras(K: torch.Tensor, size: torch.Tensor) -> tuple[CameraModel, CameraModel]:
    """The colour camera (K [3, 3], size (w, h)) and its registered depth camera, binned to ≤ 848 px wide."""
    w, h = (int(x) for x in size.tolist())
    colour = CameraModel.pinhole(*(float(x) for x in (K[0, 0], K[1, 1], K[0, 2], K[1, 2])), w, h)
    s = max(1, math.ceil(w / 848))
    depth = CameraModel(
        k_full=colour.k_full, d=np.zeros(5), distortion_model="plumb_bob", width=w, height=h, binning_x=s, binning_y=s
    )
    return colour, depth


def scene_depth(
    scenes: Scenes, i: int, sensor: SensorModel | None = None, g: torch.Generator | None = None
) -> tuple[np.ndarray, CameraModel, CameraModel]:
    """Scene ``i`` as the node would get it: a 16UC1 depth image (mm) and the colour and depth cameras."""
    t = scenes.targets
    colour, depth = cameras(t.K[i], t.image_size[i])
    people = torch.cat([t.joints[i : i + 1], scenes.others[i]])
    here = torch.isfinite(people).all(-1).all(-1)
    people = people[here]
    planes = scenes.planes[i][torch.isfinite(scenes.planes[i]).all(-1)]
    dK = torch.as_tensor(depth.K, dtype=people.dtype, device=people.device)
    girth = None if scenes.girth is None else scenes.girth[i][here]
    z = render_depth(dK, depth.image_size, body_capsules(people, girth=girth), planes)
    return sense(z, sensor, g), colour, depth
