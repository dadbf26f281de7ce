"""Rendered depth: exact capsule and plane depths, the z-buffer, and the sensor's faults."""

import math

import numpy as np
import torch

from abspose import skeleton as sk
from abspose.surface import Capsules, body_capsules
from abspose.training.render import SensorModel, render_depth, sense

K = torch.tensor([[500.0, 0, 160], [0, 500.0, 120], [0, 0, 1]])
SIZE = (320, 240)


def _caps(*items):
    a = torch.tensor([i[0] for i in items], dtype=torch.float32)
    b = torch.tensor([i[1] for i in items], dtype=torch.float32)
    return Capsules(a, b, torch.tensor([i[2] for i in items], dtype=torch.float32))


def test_capsule_and_sphere_depths_are_exact_and_the_nearest_surface_wins():
    # a vertical capsule (a standing limb) at 3 m, radius 0.1; a sphere at 2 m in front of its lower part
    z = render_depth(K, SIZE, _caps(([0.0, -0.5, 3.0], [0.0, 0.5, 3.0], 0.1), ([0.0, 0.4, 2.0], [0.0, 0.4, 2.0], 0.05)))
    assert abs(z[120, 160].item() - 2.9) < 1e-4  # on the axis: the front of the cylinder
    # off-axis on the cylinder at x = 0.06 m: z = 3 - sqrt(0.1² - x'²) with the ray's own geometry
    u = 170  # 10 px right of the centre
    x = (u - 160) / 500.0
    # ray (x, 0, 1) t; hit where (x t)² + (t - 3)² = 0.01
    a, b, c = x * x + 1, -6.0, 9 - 0.01
    t = (-b - math.sqrt(b * b - 4 * a * c)) / (2 * a)
    assert abs(z[120, u].item() - t) < 1e-4
    v = 120 + int(0.4 / 2.0 * 500)  # the sphere's centre pixel
    dist = math.hypot(0.4, 2.0)  # along the ray through the centre: hit at dist - r, z = that × 2 / dist
    assert abs(z[v, 160].item() - (dist - 0.05) * 2.0 / dist) < 1e-4
    assert torch.isinf(z[0, 0])  # nothing there


def test_planes_and_bodies_share_the_z_buffer():
    floor = torch.tensor([[0.0, -1.0, 0.0, -1.2]])  # y = 1.2 m below the optical axis (y down)
    wall = torch.tensor([[0.0, 0.0, 1.0, 6.0]])
    body = body_capsules(torch.zeros(1, sk.NUM_JOINTS, 3) + torch.tensor([0.0, 0.0, 3.0]))
    z = render_depth(K, SIZE, body, torch.cat([floor, wall]))
    assert abs(z[0, 0].item() - 6.0) < 1e-4  # wall above the horizon
    v = 239
    assert abs(z[v, 5].item() - 1.2 / ((v - 120) / 500)) < 1e-3  # floor below it (nearer than the wall)
    assert z[120, 160] < 3.0  # the (collapsed) body in front of both


def test_sensor_noise_grows_with_z_squared_and_faults_are_where_they_belong():
    g = torch.Generator().manual_seed(0)
    model = SensorModel(noise=(2e-3, 2e-3), holes=(0.0, 0.0), dropout=0.0, flying=0.0, max_range=(9.0, 9.0))
    z = torch.full((240, 320), 2.0)
    z[:, 160:] = 4.0
    mm = sense(z, model, g).astype(np.float64) / 1000
    assert mm.dtype == np.float64 and (mm > 0).all()
    sd_near, sd_far = mm[:, :150].std(), mm[:, 170:].std()
    # σ = k z², its smooth and per-pixel parts together of unit variance (measured 0.99-1.03 over 8 seeds)
    assert 0.9 * 2e-3 * 4 < sd_near < 1.1 * 2e-3 * 4 and 3 < sd_far / sd_near < 5.5
    # range limits and holes give 0 (no reading); flying pixels only on the depth step
    far = sense(torch.full((240, 320), 9.5), SensorModel(noise=(0.0, 0.0), max_range=(9.0, 9.0)), g)
    assert (far == 0).all()
    holes = sense(torch.full((240, 320), 2.0), SensorModel(holes=(0.3, 0.3), dropout=0.0, flying=0.0), g)
    assert 0.2 < (holes == 0).mean() < 0.4
    fly = sense(z, SensorModel(noise=(0.0, 0.0), holes=(0.0, 0.0), dropout=0.0, flying=1.0), g) / 1000
    between = (fly > 2.01) & (fly < 3.99)
    assert between[:, 159:161].mean() > 0.9 and not between[:, :158].any() and not between[:, 162:].any()
