"""The depth mode of the evaluation: rendered scenes through the node's own depth path."""

import pytest

from abspose.dataset import load_mocap_set
from abspose.evaluate import DEPTH_BANDS, NODE_ROW, depth_inputs, depth_predictions, score
from abspose.lifter import Lifter
from abspose.noise2d import NoiseModel
from abspose.scenes import make_scenes

from conftest import data_path


@pytest.fixture(scope="module")
def rows():
    val = load_mocap_set(data_path("mocap").parent).split("val")
    scenes = make_scenes(val, 160, 11, NoiseModel.default())
    inputs = depth_inputs(scenes, 12)
    preds = depth_predictions(Lifter.load(), scenes.targets, inputs)
    return {k: score(v, scenes.targets, DEPTH_BANDS) for k, v in preds.items()}


def test_depth_beats_monocular_near_and_never_hurts_far(rows):
    mono, node = rows["monocular lifter"], rows[NODE_ROW]
    assert node["< 5 m"]["MRPE"] < 0.7 * mono["< 5 m"]["MRPE"]
    assert node["< 5 m"]["MPJPE"] < 1.05 * mono["< 5 m"]["MPJPE"]
    for band, _, _ in DEPTH_BANDS:
        if node[band]["n"] >= 20:
            assert node[band]["MRPE"] < 1.1 * mono[band]["MRPE"], band


def test_one_raw_pixel_is_worse_than_the_robust_readout(rows):
    pixel = rows["one depth pixel at the pelvis keypoint (anchors), else monocular"]
    assert pixel["< 5 m"]["MRPE"] > 1.5 * rows[NODE_ROW]["< 5 m"]["MRPE"]


def test_the_reported_uncertainty_matches_the_actual_error(rows):
    # planners read each joint's uncertainty as its expected 3D error: on the renders the mean σ must be
    # of the size of the actual absolute error (A-MPJPE), and most errors within 2σ
    for name in ("monocular lifter", NODE_ROW):
        near = rows[name]["< 5 m"]
        assert 0.6 < near["A-MPJPE"] / near["mean σ"] < 1.4, (name, near)
        assert near["error ≤ 2σ (%)"] > 70, (name, near)
    assert "mean σ" not in rows["one depth pixel at the pelvis keypoint (anchors), else monocular"]["< 5 m"]
