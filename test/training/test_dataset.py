"""The whole shared mocap set: split by clip, floor at 0, cached."""

import numpy as np
import pytest

from abspose import skeleton as sk
from abspose.training import dataset
from abspose.training.dataset import load_mocap_set

from conftest import DATA, data_path


@pytest.fixture(scope="module")
def mocap_set():
    data_path("mocap")
    return load_mocap_set(DATA)


def test_every_source_is_loaded_and_clips_are_never_split(mocap_set):
    sources = {n.split("/")[0] for n in mocap_set.clip_names}
    assert sources == {"expmap", "daz", "asf", "bvh"}
    assert len(mocap_set.clip_names) == len(set(mocap_set.clip_names)) == 144
    # a clip index maps to exactly one split, so no clip has frames on both sides
    train, val = mocap_set.split("train"), mocap_set.split("val")
    assert len(train) + len(val) == len(mocap_set.poses)
    assert 0.1 < len(val) / len(mocap_set.poses) < 0.3
    val_clips = {n for n, s in zip(mocap_set.clip_names, mocap_set.clip_split, strict=True) if s == "val"}
    assert any(n.startswith("expmap/test/") for n in val_clips) and any(n.startswith("daz/") for n in val_clips)
    assert not any(n.startswith("expmap/train/") for n in val_clips)


def test_poses_are_metric_upright_and_on_the_floor(mocap_set):
    p = mocap_set.poses
    assert np.isfinite(p).all()
    feet = p[:, [sk.JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")], 1].min(1)
    assert abs(np.median(feet)) < 0.1  # floor at y = 0
    assert 0.7 < np.median(p[:, sk.PELVIS, 1]) < 1.1  # standing pelvis height, metres
    assert (p[:, sk.JOINT_INDEX["head"], 1] > p[:, sk.PELVIS, 1]).mean() > 0.95  # Y up


def test_second_load_comes_from_the_cache_and_is_identical(mocap_set, monkeypatch):
    # the first load (this session's, in a fresh cache folder) built the set from the mocap files and
    # wrote the cache; a second load that parsed any mocap file would fail now
    def parse(root):
        raise AssertionError(f"the cache was not read: {root} parsed again")

    monkeypatch.setattr(dataset, "_load_all", parse)
    again = load_mocap_set(DATA)
    np.testing.assert_array_equal(again.poses, mocap_set.poses)
    np.testing.assert_array_equal(again.clip, mocap_set.clip)
    assert again.clip_names == mocap_set.clip_names and again.clip_split == mocap_set.clip_split
    with pytest.raises(AssertionError, match="cache was not read"):  # and without the cache it does parse
        load_mocap_set(DATA, use_cache=False)
