"""The lifter: normalization, canonical depth, masking, the shipped checkpoint and the user API."""

import pytest
import torch

from abspose import skeleton as sk
from abspose.lifter import J_IN, Lifter, LifterConfig, features, lift, n_features, normalize
from abspose.training.metrics import mpjpe, mrpe
from abspose.training.noise2d import NoiseModel
from abspose.training.synth import CameraRange
from abspose.training.train import validation_set

from conftest import DATA, data_path


@pytest.fixture(scope="module")
def shipped():
    return Lifter.load()


@pytest.fixture(scope="module")
def held_out():
    data_path("mocap")
    from abspose.training.dataset import load_mocap_set

    return validation_set(load_mocap_set(DATA).split("val"), 3000, 7, NoiseModel.default(), CameraRange())


def _pose(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    kp = 200 + 100 * torch.rand(n, J_IN, 2, generator=g)
    K = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]]).expand(n, 3, 3)
    return kp, torch.ones(n, J_IN, dtype=torch.bool), K


def test_normalization_is_translation_and_scale_free_and_ignores_masked_joints():
    kp, mask, K = _pose()
    pose, _, sigma = normalize(kp, mask, K)
    moved = normalize(kp * 2 + 30, mask, K)
    assert torch.allclose(moved[0], pose, atol=1e-5)
    assert torch.allclose(moved[2], 2 * sigma, rtol=1e-5)
    mask[:, 3] = False
    garbage = kp.clone()
    garbage[:, 3] = 1e5
    a, b = features(kp, mask, K, None, LifterConfig()), features(garbage, mask, K, None, LifterConfig())
    assert torch.equal(a[0], b[0])
    assert (a[0][:, 2 * 3 : 2 * 3 + 2] == 0).all()  # masked joint is a zero, and its mask bit says so


def test_canonical_depth_makes_depth_follow_the_focal_length(shipped):
    """Same pixels with twice the focal length = the same person twice as far (Z = f · Z/f)."""
    kp, mask, K = _pose()
    K2 = K.clone()
    K2[:, 0, 0] *= 2
    K2[:, 1, 1] *= 2
    with torch.no_grad():
        a, b = shipped(kp, mask, K), shipped(kp, mask, K2)
    # the perspective features (u/f, σ/f) change too, so the relation is close, not exact
    assert torch.allclose(b.root[:, 2] / a.root[:, 2], torch.full((4,), 2.0), rtol=0.1)


def test_shipped_checkpoint_on_held_out_mocap(shipped, held_out):
    with torch.no_grad():
        res = shipped(held_out.keypoints, held_out.mask, held_out.K)
    root = held_out.joints[:, sk.PELVIS]
    near = root[:, 2] < 6
    assert mpjpe(res.joints, held_out.joints).mean() < 0.1
    assert mrpe(res.root, root)[near].mean() < 0.25
    # the uncertainty head ranks errors: joints it is unsure about are worse
    err = (res.joints - held_out.joints).norm(dim=-1)
    unsure = res.uncertainty > res.uncertainty.median()
    assert err[unsure].mean() > 1.5 * err[~unsure].mean()
    assert 0.5 < res.uncertainty.mean() / err.mean() < 2.0


def test_flip_averaging_is_mirror_symmetric_and_helps_on_held_out_mocap(held_out):
    """Mirroring the keypoints about the principal point's column (left/right swapped) must give the mirrored
    answer exactly; averaging with the lifted mirror image lowers the error on held-out people."""
    model = Lifter.load()
    kp, mask, K = held_out.keypoints[:200], held_out.mask[:200].clone(), held_out.K[:200]
    mask[:5, 3] = False  # a missing joint moves to the other side
    mirrored = torch.stack([2 * K[:, None, 0, 2] - kp[..., 0], kp[..., 1]], -1)[:, list(sk.INPUT_FLIP_PERMUTATION)]
    with torch.no_grad():
        a = model(kp, mask, K)
        b = model(mirrored, mask[:, list(sk.INPUT_FLIP_PERMUTATION)], K)
    flip_x = torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(b.joints[:, list(sk.FLIP_PERMUTATION)] * flip_x, a.joints, atol=1e-4)
    assert torch.allclose(2 * K[:, 0, 2] - b.root_pixel[:, 0], a.root_pixel[:, 0], atol=1e-2)
    assert torch.allclose(b.uncertainty[:, list(sk.FLIP_PERMUTATION)], a.uncertainty, atol=1e-5)

    root = held_out.joints[:, sk.PELVIS]
    errors = {}
    for flip in (False, True):
        model.flip_average = flip
        with torch.no_grad():
            res = model(held_out.keypoints, held_out.mask, held_out.K)
        errors[flip] = (mpjpe(res.joints, held_out.joints).mean(), mrpe(res.root, root).mean())
    assert errors[True][0] < errors[False][0] - 0.0005  # metres
    assert errors[True][1] < errors[False][1]


def test_depth_readouts_improve_the_root(shipped):
    data_path("mocap")
    from abspose.training.dataset import load_mocap_set
    from abspose.training.synth import DepthRange

    batch = validation_set(
        load_mocap_set(DATA).split("val"), 2000, 8, NoiseModel.default(), CameraRange(), DepthRange(fraction=1.0)
    )
    root = batch.joints[:, sk.PELVIS]
    with torch.no_grad():
        mono = shipped(batch.keypoints, batch.mask, batch.K)
        rgbd = shipped(batch.keypoints, batch.mask, batch.K, batch.depth)
    has = torch.isfinite(batch.depth).sum(1) >= 3
    assert mrpe(rgbd.root, root)[has].mean() < 0.5 * mrpe(mono.root, root)[has].mean()


def test_api_batches_masks_and_handles_empty_and_hopeless_input(shipped):
    kp18 = torch.full((3, sk.NUM_JOINTS, 2), float("nan"))
    g = torch.Generator().manual_seed(1)
    kp18[:, list(sk.INPUT_INDEX)] = 200 + 150 * torch.rand(3, J_IN, 2, generator=g)
    conf = torch.ones(3, sk.NUM_JOINTS)
    conf[2] = 0.1  # nobody usable
    K = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
    res = lift(shipped, kp18, conf, K)
    assert res.joints.shape == (3, sk.NUM_JOINTS, 3) and res.uncertainty.shape == (3, sk.NUM_JOINTS)
    assert torch.isfinite(res.joints[:2]).all() and torch.isnan(res.joints[2]).all()
    assert (res.root[:2, 2] > 0).all()
    single = lift(shipped, kp18[:1], conf[:1], K)
    assert torch.allclose(single.joints, res.joints[:1], atol=1e-5)  # no batch coupling (eval-mode BatchNorm)
    empty = lift(shipped, kp18[:0], conf[:0], K)
    assert empty.joints.shape == (0, sk.NUM_JOINTS, 3)


def test_feature_width_matches_every_configuration():
    kp, mask, K = _pose()
    depth = torch.full((4, J_IN), 3.0)
    for loc_scale in (True, False):
        for focal_features in (True, False):
            for depth_inputs in (True, False):
                cfg = LifterConfig(loc_scale=loc_scale, focal_features=focal_features, depth_inputs=depth_inputs)
                for d in (None, depth):
                    x, _, _ = features(kp, mask, K, d, cfg)
                    assert x.shape == (4, n_features(cfg)), cfg


def test_two_usable_joints_are_enough_to_place_a_person(shipped):
    kp18 = torch.full((3, sk.NUM_JOINTS, 2), 300.0)
    kp18[:, sk.JOINT_INDEX["left_hip"]] = torch.tensor([310.0, 300.0])
    kp18[:, sk.JOINT_INDEX["neck"]] = torch.tensor([300.0, 200.0])
    conf = torch.zeros(3, sk.NUM_JOINTS)
    conf[0, [sk.JOINT_INDEX["left_hip"], sk.JOINT_INDEX["neck"]]] = 1.0  # two joints
    conf[1, sk.JOINT_INDEX["neck"]] = 1.0  # one
    res = lift(shipped, kp18, conf, torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]]))
    assert torch.isfinite(res.joints[0]).all() and res.root[0, 2] > 0
    assert torch.isnan(res.joints[1:]).all() and torch.isnan(res.uncertainty[1:]).all()


def test_checkpoint_round_trip_and_clear_errors(tmp_path, shipped):
    path = tmp_path / "m.safetensors"
    small = Lifter(LifterConfig(width=32)).eval()
    small.save(path)
    again = Lifter.load(path)
    kp, mask, K = _pose()
    with torch.no_grad():
        assert torch.allclose(small(kp, mask, K).joints, again(kp, mask, K).joints)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"broken\.safetensors"):
        Lifter.load(broken)
    with pytest.raises(FileNotFoundError, match="nope"):
        Lifter.load(tmp_path / "nope.safetensors")
    assert "train_config" in shipped.metadata and "noise_model" in shipped.metadata


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(shipped):
    kp, mask, K = _pose()
    with torch.no_grad():
        cpu = shipped(kp, mask, K)
        gpu = Lifter.load(device="cuda")(kp.cuda(), mask.cuda(), K.cuda())
    assert torch.allclose(gpu.joints.cpu(), cpu.joints, atol=1e-3)
