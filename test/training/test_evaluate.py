"""The evaluation: the depth mode (rendered scenes through the node's own depth path) and the lifter tables'
split of people fully in the image from people the border cuts."""

from dataclasses import replace

import pytest
import torch

from abspose import skeleton as sk
from abspose.ground import ContactConfig
from abspose.lifter import Lifter
from abspose.training.dataset import load_mocap_set
from abspose.training.evaluate import (
    DEPTH_BANDS,
    FRAME_GROUPS,
    NODE_ROW,
    TARGET_GROUPS,
    Prediction,
    depth_bias_by_stature,
    depth_inputs,
    depth_predictions,
    floor_planes,
    in_frame,
    in_view,
    markdown,
    on_floor,
    score,
)
from abspose.training.noise2d import NoiseModel
from abspose.training.scenes import make_scenes
from abspose.training.stature import StaturePrior

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


def test_the_depth_features_sharpen_the_pose_and_its_uncertainty(rows):
    # the node lifts again with the accepted readouts as inputs; fusing the monocular lift alone is worse
    node, plain = rows[NODE_ROW]["< 5 m"], rows["robust readout + fusion, no depth features"]["< 5 m"]
    assert node["MPJPE"] < 0.98 * plain["MPJPE"]  # measured 79.3 against 83.7 mm
    assert node["mean σ"] < 0.93 * plain["mean σ"]  # 93.2 against 107.9 mm


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


@pytest.fixture(scope="module")
def held_out():
    from abspose.training.synth import CameraRange
    from abspose.training.train import validation_set

    val = load_mocap_set(data_path("mocap").parent).split("val")
    return validation_set(val, 3000, 21, NoiseModel.default(), CameraRange())


def test_people_fully_in_the_image_are_told_from_people_the_border_cuts(held_out):
    whole = in_frame(held_out)
    assert 0.3 < whole.float().mean() < 0.8  # the random cameras cut many people (near ones, long lenses)
    # an image grown about the same principal point keeps everyone who was in view in view (and brings some
    # cut people in); a one-pixel image holds no one
    grown = replace(held_out, image_size=held_out.image_size * 3, K=held_out.K.clone())
    grown.K[:, :2, 2] += held_out.image_size
    assert in_frame(grown)[whole].all() and in_frame(grown).float().mean() > whole.float().mean()
    assert not in_frame(replace(held_out, image_size=torch.ones_like(held_out.image_size))).any()
    # a person cut at the feet: the right foot pushed below the bottom edge
    low = held_out.joints.clone()
    k = torch.nonzero(whole)[0, 0]
    foot = sk.JOINT_INDEX["right_foot"]
    low[k, foot, 1] = (held_out.image_size[k, 1] + 10 - held_out.K[k, 1, 2]) / held_out.K[k, 1, 1] * low[k, foot, 2]
    assert not in_frame(replace(held_out, joints=low))[k]
    # in_view: the pushed foot alone leaves the joints in view
    view, low_view = in_view(held_out), in_view(replace(held_out, joints=low))
    assert view[k].all() and not low_view[k, foot] and low_view[k].sum() == len(sk.JOINT_NAMES) - 1
    assert torch.equal(in_frame(held_out), view[:, list(sk.INPUT_INDEX)].all(-1))
    assert 0.8 < view.float().mean() < 0.95  # 10-15 % of all joints lie outside the image


def test_the_lifter_tables_split_whole_people_from_cut_ones(held_out):
    """score(frame=True): the two groups partition the samples; the shipped lifter is worse on people the
    image border cuts, whose cut-off joints it can only guess, and as good as on whole people on the joints
    of theirs that are in view; over everyone below 6 m: MPJPE over the joints in view ≤ 70 mm, and MRPE at
    most what the stature prior's spread allows a monocular lifter (docs/lifter.md: 193 mm on 20,000 samples,
    181 mm even with clean 2D; the issue's 120 mm is below that floor)."""
    with torch.no_grad():
        res = Lifter.load()(held_out.keypoints, held_out.mask, held_out.K)
    rows = score(Prediction(res.joints, res.root), held_out, frame=True)
    whole, cut = rows[FRAME_GROUPS[0]], rows[FRAME_GROUPS[1]]
    assert whole["n"] + cut["n"] == rows["all"]["n"] == len(held_out)
    assert whole["MPJPE"] < 72 and whole["MPJPE"] < rows["all"]["MPJPE"] - 3 < cut["MPJPE"] - 6, rows
    assert FRAME_GROUPS[0] not in score(Prediction(res.joints, res.root), held_out)
    # the target groups: everyone below 6 m, and the whole people among them
    near, near_whole = rows[TARGET_GROUPS[0]], rows[TARGET_GROUPS[1]]
    assert rows["< 3 m"]["n"] + rows["3–6 m"]["n"] == near["n"] > near_whole["n"] > 0
    mrpe_bands = (rows["< 3 m"]["MRPE"] * rows["< 3 m"]["n"] + rows["3–6 m"]["MRPE"] * rows["3–6 m"]["n"]) / near["n"]
    assert abs(near["MRPE"] - mrpe_bands) < 1e-3 * near["MRPE"]
    # MPJPE in view: the whole people's joints are (nearly) all in view; the cut people's error is in the
    # joints the border cut off
    assert abs(whole["MPJPE in view"] - whole["MPJPE"]) < 0.5
    assert cut["MPJPE in view"] < whole["MPJPE"] + 3 < cut["MPJPE"] - 10, rows
    assert near["MPJPE in view"] < 70 and near["MRPE"] < 205, near


def test_depth_is_unbiased_at_the_population_mean_stature(held_out):
    """A monocular lifter cannot see body size: it places a person of the prior's mean stature at the right
    depth (within 2 %, the issue's target), shorter people farther and taller ones nearer; eval-lifter prints
    the same table."""
    with torch.no_grad():
        res = Lifter.load()(held_out.keypoints, held_out.mask, held_out.K)
    ratio = res.root[:, 2] / held_out.joints[:, sk.PELVIS, 2]
    mean = StaturePrior().mean
    at_mean = (held_out.stature - mean).abs() < 0.025
    short, tall = held_out.stature < 1.58, held_out.stature > 1.80
    assert at_mean.sum() > 300 and short.sum() > 200 and tall.sum() > 200
    assert abs(ratio[at_mean].median().item() - 1) < 0.02
    assert ratio[short].median() > ratio[at_mean].median() + 0.02 > ratio[tall].median() + 0.04
    table = depth_bias_by_stature({"lifter": Prediction(res.joints, res.root)}, held_out, mean)
    row = next(line for line in table.splitlines() if line.startswith("| population mean"))
    assert f"| {int(at_mean.sum())} | {100 * (ratio[at_mean].median().item() - 1):+.1f} % |" in row


def test_every_column_and_its_table_row_worked_by_hand(held_out):
    # everyone predicted 3 cm right, 4 cm up and 12 cm farther, pose exact: no pose error, a 13 cm root
    # error split into its axes, every joint within 15 cm
    shift = torch.tensor([0.03, -0.04, 0.12])
    pred = Prediction(held_out.joints + shift, held_out.joints[:, sk.PELVIS] + shift)
    rows = score(pred, held_out, frame=True)
    got = {k: round(v, 1) for k, v in rows["all"].items() if k != "n"}
    assert got == {
        "MPJPE": 0.0,
        "MPJPE in view": 0.0,
        "PA-MPJPE": 0.0,
        "MRPE": 130.0,
        "MRPE X": 30.0,
        "MRPE Y": 40.0,
        "MRPE Z": 120.0,
        "A-MPJPE": 130.0,
        "3DPCK@150 (%)": 100.0,
    }
    table = markdown({"shifted": rows}).splitlines()
    assert table[:4] == [
        f"**all** ({len(held_out)} samples; mm, PCK in %)",
        "",
        "| model | MPJPE | PA-MPJPE | MRPE | MRPE X | MRPE Y | MRPE Z | A-MPJPE | 3DPCK@150 (%) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    assert table[4] == "| shifted | 0.0 | 0.0 | 130.0 | 30.0 | 40.0 | 120.0 | 130.0 | 100.0 |"
    bias = depth_bias_by_stature({"a": pred}, held_out, 1.68).splitlines()
    assert [line.split(" | ")[0] for line in bias[2:]] == [
        "| < 1.55 m",
        "| 1.55–1.62 m",
        "| 1.62–1.66 m",
        "| 1.66–1.71 m",
        "| 1.71–1.76 m",
        "| 1.76–1.85 m",
        "| ≥ 1.85 m",
        "| population mean 1.680 m ± 2.5 cm",
        "| everyone",
    ]


def test_feet_count_as_on_the_floor_up_to_5_cm_above_their_contact_height(held_out):
    cfg = ContactConfig()
    up, height = floor_planes(held_out)
    feet = [sk.JOINT_INDEX[j] for j in cfg.joints]
    above = (held_out.joints[:, feet] * up[:, None]).sum(-1) + height[:, None]  # over the floor, m
    lowest = (above - torch.tensor(cfg.joint_height)).amin(1)
    for lift, on in ((0.0, True), (0.04, True), (0.06, False), (-0.3, True)):
        moved = held_out.joints + ((lift - lowest)[:, None] * up)[:, None]
        assert bool((on_floor(replace(held_out, joints=moved), cfg) == on).all()), lift
