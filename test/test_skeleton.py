import json
import re

import pytest
import torch

from abspose import skeleton as sk

from conftest import data_path


def test_joint_names_unique_and_bones_form_tree_rooted_at_pelvis():
    assert len(set(sk.JOINT_NAMES)) == sk.NUM_JOINTS == 18
    assert sk.PARENTS[sk.PELVIS] == -1
    children = [b for _, b in sk.BONES]
    assert sorted(children) == sorted(n for n in sk.JOINT_NAMES if n != "pelvis")  # every joint has one parent
    # walking parents from any joint reaches the pelvis without cycles
    for j in range(sk.NUM_JOINTS):
        seen = set()
        while j != sk.PELVIS:
            assert j not in seen
            seen.add(j)
            j = sk.PARENTS[j]


def test_flip_swaps_left_and_right_and_is_an_involution():
    flip = sk.FLIP_PERMUTATION
    assert [flip[f] for f in flip] == list(range(sk.NUM_JOINTS))
    for i, name in enumerate(sk.JOINT_NAMES):
        other = sk.JOINT_NAMES[flip[i]]
        if name.startswith("left_"):
            assert other == "right_" + name[5:]
        elif not name.startswith("right_"):
            assert other == name


def test_input_joints_exclude_output_only_and_blazepose_has_no_source_for_them():
    assert "spine" not in sk.INPUT_JOINTS and len(sk.INPUT_JOINTS) == sk.NUM_JOINTS - 1
    assert sk.BLAZEPOSE_SOURCES[sk.JOINT_INDEX["spine"]] == (-1, -1)


def test_from_blazepose_midpoints_min_confidence_and_output_only_nan():
    torch.manual_seed(0)
    lm = torch.rand(4, 33, 2) * 640
    conf = torch.rand(4, 33)
    joints, jconf = sk.from_blazepose(lm, conf)
    assert joints.shape == (4, 18, 2) and jconf.shape == (4, 18)
    bp = {n: i for i, n in enumerate(sk.BLAZEPOSE_LANDMARKS)}
    J = sk.JOINT_INDEX
    torch.testing.assert_close(joints[:, J["pelvis"]], (lm[:, bp["left_hip"]] + lm[:, bp["right_hip"]]) / 2)
    torch.testing.assert_close(joints[:, J["head"]], (lm[:, bp["left_ear"]] + lm[:, bp["right_ear"]]) / 2)
    torch.testing.assert_close(joints[:, J["left_wrist"]], lm[:, bp["left_wrist"]])
    torch.testing.assert_close(joints[:, J["right_foot"]], lm[:, bp["right_foot_index"]])
    torch.testing.assert_close(jconf[:, J["neck"]], torch.minimum(conf[:, 11], conf[:, 12]))
    assert torch.isnan(joints[:, J["spine"]]).all() and (jconf[:, J["spine"]] == 0).all()


def _bvh_joint_names(text):
    names, stack = [], []
    for line in text.splitlines():
        tok = line.split()
        if tok[:1] in (["ROOT"], ["JOINT"]):
            names.append(tok[1])
            stack.append(tok[1])
        elif tok[:2] == ["End", "Site"]:
            names.append(stack[-1] + "_end")
            stack.append(names[-1])
        elif tok[:1] == ["}"]:
            stack.pop()
        elif tok[:1] == ["MOTION"]:
            break
    return names


@pytest.mark.parametrize(
    ("rel", "convention"),
    [
        ("cmu_asf_amc_bvh/fairmotion/01_01.bvh", "bvh_cmu"),
        ("cmu_asf_amc_bvh/bvh11/131_01.bvh", "bvh_cmu_alt"),
    ],
)
def test_mocap_names_exist_in_the_real_bvh_files(rel, convention):
    names = _bvh_joint_names(data_path("mocap", rel).read_text())
    assert sk.mocap_convention(names) == convention
    idx = sk.mocap_indices(names)
    assert all((i >= 0) != (j in sk.DERIVED) for i, j in zip(idx, sk.JOINT_NAMES, strict=True))


def test_mocap_names_exist_in_daz_template():
    import tarfile

    path = data_path("mocap", "cmu_daz_dance_bvh", "train_data_bvh_raw.tar.xz")
    with tarfile.open(path) as tar:
        text = tar.extractfile("train_data_bvh/standard.bvh").read().decode()
    assert sk.mocap_convention(_bvh_joint_names(text)) == "bvh_daz"


def test_mocap_names_exist_in_asf_and_expmap_skeleton():
    asf = data_path("mocap", "cmu_asf_amc_bvh", "fairmotion", "01.asf").read_text()
    bones = re.findall(r"^\s*name\s+(\S+)", asf, flags=re.M)
    assert sk.mocap_convention(bones) == "asf"
    names = json.loads(data_path("mocap", "cmu_li2018_expmap", "skeleton.json").read_text())["joint_names"]
    assert sk.mocap_convention(names) == "expmap"


def test_from_mocap_derives_pelvis_and_neck():
    names = [
        "lhip",
        "rhip",
        "lknee",
        "rknee",
        "lankle",
        "rankle",
        "ltoe_end",
        "rtoe_end",
        "thorax",
        "upperneck_end",
        "lshoulder",
        "rshoulder",
        "lelbow",
        "relbow",
        "lwrist",
        "rwrist",
    ]
    pos = torch.randn(5, len(names), 3)
    out = sk.from_mocap(pos, names)
    J = sk.JOINT_INDEX
    torch.testing.assert_close(out[:, J["pelvis"]], (pos[:, 0] + pos[:, 1]) / 2)
    torch.testing.assert_close(out[:, J["neck"]], (pos[:, 10] + pos[:, 11]) / 2)
    torch.testing.assert_close(out[:, J["spine"]], pos[:, 8])
    with pytest.raises(ValueError, match="unknown mocap skeleton"):
        sk.mocap_convention(["a", "b"])
    # the convention's key joint alone is not enough: every joint the table maps must be there
    with pytest.raises(ValueError, match="unknown mocap skeleton"):
        sk.mocap_convention([n for n in names if n != "lwrist"])
