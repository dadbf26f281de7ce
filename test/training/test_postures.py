"""Postures made from real mocap poses: anatomical bodies on the floor, each kind what it says, balanced."""

import math

import pytest
import torch

from abspose import skeleton as sk
from abspose.training import postures as P
from abspose.training.dataset import load_mocap_set
from abspose.training.evaluate import ACTIVITY_GROUPS, activities, posture_sets
from abspose.training.noise2d import NoiseModel
from abspose.training.synth import REFERENCE_BONES, CameraRange, forward_kinematics
from abspose.training.train import sample_batch

from conftest import DATA, data_path

J = sk.JOINT_INDEX
N = 1500
LEG = REFERENCE_BONES["left_hip", "left_knee"] + REFERENCE_BONES["left_knee", "left_ankle"]


@pytest.fixture(scope="module")
def real():
    data_path("mocap")
    train = load_mocap_set(DATA).split("train")
    g = torch.Generator().manual_seed(0)
    return tuple(train[torch.randint(len(train), (N,), generator=g)] for _ in "lu")


@pytest.fixture(scope="module")
def made(real):
    g = torch.Generator().manual_seed(1)
    return {kind: P.make(kind, *real, g) for kind in P.KINDS}


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.acos(torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1)))


@pytest.mark.parametrize("kind", P.KINDS)
def test_postures_are_anatomical_bodies_on_the_floor(made, kind):
    pose = made[kind]
    assert torch.isfinite(pose).all()
    for k, (a, b) in enumerate(sk.BONE_INDEX):  # the reference bones, pelvis and neck still midpoints
        length = (pose[:, b] - pose[:, a]).norm(dim=-1)
        torch.testing.assert_close(length, torch.full_like(length, REFERENCE_BONES[sk.BONES[k]]))
    for mid, (a, b) in sk.DERIVED.items():
        torch.testing.assert_close(pose[:, J[mid]], (pose[:, J[a]] + pose[:, J[b]]) / 2, atol=1e-5, rtol=0)
    lowest = (pose[..., 1] - P.CLEARANCE).amin(1)
    if kind in P.AIRBORNE:  # half of them in the air, none through the floor
        assert lowest.min() > -1e-5 and lowest.max() < P.MAX_AIR
        assert 0.4 < (lowest > 0.01).float().mean() < 0.6
    else:
        assert lowest.abs().max() < 1e-5  # the lowest joint just touches, none goes through
    if kind not in ("sitting", "crouching", "kneeling", "bending"):
        return  # the others keep a real pose's legs (as it bent them), or some of them
    for side in ("left", "right"):  # made knees bend one way only, and at most MAX_KNEE
        hip, knee, ankle = (pose[:, J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
        assert _angle(knee - hip, ankle - knee).max() <= P.MAX_KNEE + 0.1


def test_each_kind_is_the_posture_it_names(made):
    def height(pose, joint):
        return pose[:, J[joint], 1]

    sit = made["sitting"]
    thigh = sit[:, J["left_knee"]] - sit[:, J["left_hip"]]
    assert (_angle(thigh, thigh * torch.tensor([1.0, 0.0, 1.0])) < 40).float().mean() > 0.9  # thighs level
    assert (height(sit, "pelvis") < 0.9 * LEG).all()  # a standing pelvis is ~1.07 LEG up
    assert (height(made["crouching"], "pelvis") < 0.7 * LEG).float().mean() > 0.9
    kneel = made["kneeling"]
    knees = torch.stack([height(kneel, "left_knee"), height(kneel, "right_knee")], 1).amin(1)
    assert (knees < P.CLEARANCE[J["left_knee"]] + 0.04).float().mean() > 0.85  # toes may lift them a little
    bend = made["bending"]
    trunk = bend[:, J["neck"]] - bend[:, J["pelvis"]]
    assert (_angle(trunk, torch.tensor([0.0, 1.0, 0.0])) > 40).float().mean() > 0.9
    assert (bend[:, :, 1].amax(1) < 1.45).all()  # nobody bent over stands tall
    assert (height(made["lying"], "pelvis") < 0.6).float().mean() > 0.9  # flat, seated or on all fours
    for kind in ("sitting", "kneeling", "reaching", "leaning", "recombined"):  # the heads stay up
        assert (height(made[kind], "head") > height(made[kind], "pelvis")).float().mean() > 0.95
    tumble = made["tumbling"]  # turned over by 30-180°, so about half of them head down

    def tilted(pose):  # trunk more than 30° from the vertical
        return (_angle(pose[:, J["neck"]] - pose[:, J["pelvis"]], torch.tensor([0.0, 1.0, 0.0])) > 30).float().mean()

    assert tilted(tumble) > 0.9 and tilted(made["recombined"]) < 0.2
    assert 0.35 < (height(tumble, "head") < height(tumble, "pelvis")).float().mean() < 0.75


def test_standing_postures_keep_their_centre_of_mass_over_the_feet(made):
    for kind in P.STANDING:
        pose = made[kind]
        com, ankles = P.centre_of_mass(pose), pose[:, [J["left_ankle"], J["right_ankle"]]]
        toes = pose[:, [J["left_foot"], J["right_foot"]]]
        z = com[:, 2] - ankles[:, :, 2].mean(1)
        front = toes[:, :, 2].mean(1) - ankles[:, :, 2].mean(1)
        over = (z > -0.03 - 1e-3) & (z < front + 1e-3)
        assert over.float().mean() > 0.9, kind  # the rest needed more than MAX_BALANCE
        clearance = P.CLEARANCE[[J[f"{s}_{n}"] for n in ("ankle", "foot") for s in ("left", "right")]]
        feet = torch.cat([ankles, toes], 1)[..., 1] - clearance
        assert (feet.amin(1).abs() < 1e-4).float().mean() > 0.95, kind  # on a foot (else a hand, a deep squat)


def test_balance_turns_a_body_about_its_ankles_until_it_stands():
    dirs = torch.zeros(1, len(sk.BONES), 3)
    flat_feet = torch.full((1, 2), math.radians(15))
    dirs[:, P.HIPS + P.THIGHS + P.SHANKS + P.FEET] = P.legs(*(torch.zeros(1, 2),) * 3, flat_feet, torch.zeros(1, 2))
    dirs[:, P.TRUNK], chest = P.trunk(*(torch.tensor([math.radians(a)]) for a in (90, 0, 0, 0)))
    arms_down = torch.tensor([[0.0, 1, 0], [1, 0, 0], [-1, 0, 0], *([[0, -1, 0]] * 4)])  # head, shoulders, arms
    dirs[:, P.UPPER] = arms_down @ chest[0].T
    bones = dirs * torch.tensor([REFERENCE_BONES[b] for b in sk.BONES])[:, None]
    bent = P.on_floor(forward_kinematics(torch.zeros(1, 3), bones))  # trunk level, legs straight: it would fall
    assert P.centre_of_mass(bent)[0, 2] > 0.2
    stood = P.balance(bent)
    feet = [J[f"{s}_{n}"] for s in ("left", "right") for n in ("ankle", "foot")]
    torch.testing.assert_close(stood[:, feet], bent[:, feet])
    com = P.centre_of_mass(stood)[0, 2] - stood[0, J["left_ankle"], 2]
    assert -0.031 < com < stood[0, J["left_foot"], 2] - stood[0, J["left_ankle"], 2]  # over the foot
    assert stood[0, J["pelvis"], 2] < bent[0, J["pelvis"], 2] - 0.05  # the hips went back


def test_balance_brings_the_centre_of_mass_to_the_toes_limit_of_a_body_bent_sideways_too():
    """Bent forward 90° and 40° to the side, arms out to that side: the centre of mass lies 17 cm to the
    side of the ankles; the turn about the ankle line brings it, front to back, exactly to the toes less 2 cm."""
    dirs = torch.zeros(1, len(sk.BONES), 3)
    flat_feet = torch.full((1, 2), math.radians(15))
    dirs[:, P.HIPS + P.THIGHS + P.SHANKS + P.FEET] = P.legs(*(torch.zeros(1, 2),) * 3, flat_feet, torch.zeros(1, 2))
    dirs[:, P.TRUNK], chest = P.trunk(*(torch.tensor([math.radians(a)]) for a in (90, 40, 0, 0)))
    arms_out = torch.tensor([[0.0, 1, 0], [1, 0, 0], [-1, 0, 0], *([[1, 0, 0]] * 4)])
    dirs[:, P.UPPER] = arms_out @ chest[0].T
    bones = dirs * torch.tensor([REFERENCE_BONES[b] for b in sk.BONES])[:, None]
    stood = P.balance(P.on_floor(forward_kinematics(torch.zeros(1, 3), bones)))
    ankles = stood[0, [J["left_ankle"], J["right_ankle"]]].mean(0)
    com = P.centre_of_mass(stood)[0] - ankles
    toes = stood[0, [J["left_foot"], J["right_foot"]], 2].mean() - ankles[2]
    assert com[0] > 0.1 and abs(float(com[2] - (toes - 0.02))) < 1e-3


def test_recombined_bodies_wear_the_other_clips_arms_and_keep_their_own_legs(real):
    lower, upper = real
    pose = P.make("recombined", lower, upper, torch.Generator().manual_seed(2))
    _, chest_made = P.frames(pose)
    _, chest_upper = P.frames(upper)
    arms = P.bone_directions(pose)[:, P.UPPER] @ chest_made
    torch.testing.assert_close(arms, P.bone_directions(upper)[:, P.UPPER] @ chest_upper, atol=1e-4, rtol=0)
    for side in ("left", "right"):  # the knee angles are the lower body's own
        knee = [J[f"{side}_{n}"] for n in ("hip", "knee", "ankle")]
        a, b = (_angle(x[:, knee[1]] - x[:, knee[0]], x[:, knee[2]] - x[:, knee[1]]) for x in (pose, lower))
        torch.testing.assert_close(a, b, atol=0.05, rtol=0)


def test_made_postures_fall_in_the_activity_groups_the_evaluation_scores(real):
    sets = posture_sets(real[0], 600, 3, NoiseModel.clean())
    share = {kind: {k: v.float().mean().item() for k, v in activities(b).items()} for kind, b in sets.items()}
    low, bending = ACTIVITY_GROUPS[1], ACTIVITY_GROUPS[2]
    assert share["crouching"][low] > 0.8, share["crouching"]
    assert share["sitting"][low] > 0.6, share["sitting"]  # high stools keep the pelvis above 0.7 leg
    assert share["kneeling"][low] > 0.6
    assert share["bending"][bending] > 0.6
    # training batches get the share they ask for: far more low poses than the mocap's own
    g = torch.Generator().manual_seed(4)
    made = P.mixed(*real, g)
    plain, mixed = (sample_batch(real[0], 3000, NoiseModel.clean(), CameraRange(), None, g, made, s) for s in (0, 0.5))
    assert activities(mixed)[low].float().mean() > activities(plain)[low].float().mean() + 0.1
