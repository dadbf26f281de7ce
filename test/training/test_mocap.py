"""Mocap loaders on the real CMU files in ../shared/data/mocap."""

import tarfile

import numpy as np
import pytest
import torch

from abspose import skeleton as sk
from abspose.training.mocap import MocapError, load_asf_amc, load_bvh, load_expmap

from conftest import data_path

FM = ("mocap", "cmu_asf_amc_bvh", "fairmotion")


@pytest.fixture(scope="module")
def clip_01_01():
    bvh = load_bvh(data_path(*FM, "01_01.bvh"))
    asf = load_asf_amc(data_path(*FM, "01.asf"), data_path(*FM, "01_01.amc"))
    return bvh, asf


@pytest.fixture(scope="module")
def expmap_dir(tmp_path_factory):
    archive = data_path("mocap", "cmu_li2018_expmap", "cmu_mocap_expmap_raw.tar.xz")
    out = tmp_path_factory.mktemp("expmap")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(("walking_1.txt", "running_1.txt"))]
        tar.extractall(out, members=members, filter="data")
    return out


def test_01_01_from_asf_amc_and_bvh_agree_joint_by_joint(clip_01_01):
    bvh, asf = clip_01_01
    assert len(bvh) == len(asf) + 1  # the BVH conversion prepends a rest-pose frame
    b, a = bvh.positions[1:], asf.positions
    below = {
        "Hips": "root",
        "LeftUpLeg": "lhipjoint",
        "LeftLeg": "lfemur",
        "LeftFoot": "ltibia",
        "LeftToeBase": "lfoot",
        "RightUpLeg": "rhipjoint",
        "RightLeg": "rfemur",
        "RightFoot": "rtibia",
        "Spine": "lowerback",
        "Spine1": "upperback",
    }
    for bn, an in below.items():
        d = np.linalg.norm(b[:, bvh.names.index(bn)] - a[:, asf.names.index(an)], axis=-1)
        assert d.max() < 0.001, f"{bn}/{an}: {d.max() * 1000:.2f} mm"
    # The BVH conversion gives the ASF 'thorax' bone zero length (its Neck has OFFSET 0): above it, every
    # BVH joint is the ASF joint minus exactly that bone (11.7 cm) in every frame.
    thorax = a[:, asf.names.index("thorax")] - a[:, asf.names.index("upperback")]
    assert np.linalg.norm(thorax, axis=-1).mean() == pytest.approx(0.1166, abs=0.001)
    above = {
        "Neck1": "lowerneck",
        "Head": "upperneck",
        "LeftArm": "lclavicle",
        "LeftForeArm": "lhumerus",
        "LeftHand": "lradius",
        "RightArm": "rclavicle",
        "RightHand": "rradius",
    }
    for bn, an in above.items():
        d = np.linalg.norm(b[:, bvh.names.index(bn)] - (a[:, asf.names.index(an)] - thorax), axis=-1)
        assert d.max() < 0.001, f"{bn}/{an}: {d.max() * 1000:.2f} mm"


def bone_lengths(motion):
    kids = [j for j, p in enumerate(motion.parents) if p >= 0]
    par = [motion.parents[j] for j in kids]
    return np.linalg.norm(motion.positions[:, kids] - motion.positions[:, par], axis=-1)


def test_bone_lengths_are_constant_over_each_clip(clip_01_01, expmap_dir):
    skel = data_path("mocap", "cmu_li2018_expmap", "skeleton.json")
    clips = [*clip_01_01, load_bvh(data_path("mocap", "cmu_asf_amc_bvh", "bvh11", "131_01.bvh"))]
    clips += [load_expmap(p, skel) for p in sorted(expmap_dir.rglob("*.txt"))]
    assert len(clips) >= 5
    for motion in clips:
        lengths = bone_lengths(motion)
        assert lengths.std(axis=0).max() < 1e-6
        assert 0.01 < np.median(lengths[0][lengths[0] > 0]) < 0.5  # metres, not centimetres or inches


def test_walking_speed_is_human(expmap_dir):
    skel = data_path("mocap", "cmu_li2018_expmap", "skeleton.json")
    walk = load_expmap(next(expmap_dir.rglob("walking_1.txt")), skel)
    assert walk.fps == 120 and len(walk.names) == 38
    root = walk.positions[:, 0, [0, 2]]  # horizontal plane (Y up)
    seconds = 1.0
    step = int(seconds * walk.fps)
    speed = np.linalg.norm(root[step:] - root[:-step], axis=-1) / seconds
    assert 0.8 < np.median(speed) < 2.0, np.median(speed)


@pytest.mark.parametrize(
    ("loader", "convention"),
    [
        (lambda: load_bvh(data_path(*FM, "01_01.bvh")), "bvh_cmu"),
        (lambda: load_asf_amc(data_path(*FM, "01.asf"), data_path(*FM, "01_01.amc")), "asf"),
        (lambda: load_bvh(data_path("mocap", "cmu_asf_amc_bvh", "bvh11", "131_01.bvh")), "bvh_cmu_alt"),
        (lambda: load_bvh(data_path("mocap", "cmu_asf_amc_bvh", "bvh11", "scaled_131_01.bvh")), "bvh_cmu_alt"),
    ],
)
def test_mapped_to_the_joint_set_the_body_is_upright_and_human_sized(loader, convention):
    motion = loader()
    assert sk.mocap_convention(motion.names) == convention
    j = sk.from_mocap(torch.from_numpy(motion.positions[1:]), motion.names).numpy()
    J = sk.JOINT_INDEX
    y = j[..., 1]  # Y up
    assert np.median(y[:, J["head"]] - y[:, J["pelvis"]]) > 0.4
    assert np.median(y[:, J["pelvis"]] - y[:, J["left_ankle"]]) > 0.6
    hips = np.linalg.norm(j[:, J["left_hip"]] - j[:, J["right_hip"]], axis=-1)
    assert 0.12 < np.median(hips) < 0.35
    thigh = np.linalg.norm(j[:, J["left_hip"]] - j[:, J["left_knee"]], axis=-1)
    assert 0.3 < np.median(thigh) < 0.55


def test_bvh_units_are_recognised_the_same_clip_in_two_units():
    raw = load_bvh(data_path("mocap", "cmu_asf_amc_bvh", "bvh11", "131_01.bvh"))
    metres = load_bvh(data_path("mocap", "cmu_asf_amc_bvh", "bvh11", "scaled_131_01.bvh"))
    n = min(len(raw), len(metres))  # the scaled copy has one more frame
    assert abs(len(raw) - len(metres)) <= 1
    np.testing.assert_allclose(raw.positions[:n], metres.positions[:n], atol=0.002)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(MocapError, match=r"missing\.bvh"):
        load_bvh(tmp_path / "missing.bvh")
    bad = tmp_path / "cut.bvh"
    bad.write_text(
        "HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Xposition Yposition Zposition\n}\n"
        "MOTION\nFrames: 3\nFrame Time: 0.01\n0 1 0\n0 1\n"
    )
    with pytest.raises(MocapError, match=r"cut\.bvh"):
        load_bvh(bad)
    rows = tmp_path / "short.txt"
    rows.write_text("1,2,3\n")
    with pytest.raises(MocapError, match=r"short\.txt.*expected 117"):
        load_expmap(rows, data_path("mocap", "cmu_li2018_expmap", "skeleton.json"))


def test_daz_dance_bvh_in_centimetres_maps_to_the_joint_set(tmp_path):
    archive = data_path("mocap", "cmu_daz_dance_bvh", "train_data_bvh_raw.tar.xz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, members=[tar.getmember("train_data_bvh/martial/08.bvh")], filter="data")
    motion = load_bvh(tmp_path / "train_data_bvh" / "martial" / "08.bvh")
    assert sk.mocap_convention(motion.names) == "bvh_daz"
    j = sk.from_mocap(torch.from_numpy(motion.positions), motion.names).numpy()
    J = sk.JOINT_INDEX
    assert np.median(j[:, J["head"], 1] - j[:, J["pelvis"], 1]) > 0.4  # metres (the file is in cm)
    assert 0.12 < np.median(np.linalg.norm(j[:, J["left_hip"]] - j[:, J["right_hip"]], axis=-1)) < 0.35
