"""Skeleton array, markers and TF: built from tracked people, serialized to CDR with rosbags and read back."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from abspose import skeleton as sk
from abspose.fuse import SOURCE_FUSED, SOURCE_INVALID
from abspose.ros import outputs
from abspose.ros.messages import MessageTypes
from abspose.track import COASTING, CONFIRMED, ENDED, TENTATIVE

T = MessageTypes.rosbags()
STAMP, FRAME = 1_556_880_098_522_459_261, "head_rgbd_sensor_rgb_frame"


def person(number: int, state: int, x: float = 0.0, z: float = 2.5) -> outputs.Person:
    rng = np.random.default_rng(number)
    joints = np.array([x, 0.0, z]) + rng.normal(0, 0.2, (sk.NUM_JOINTS, 3))
    joints[sk.PELVIS] = (joints[sk.JOINT_INDEX["left_hip"]] + joints[sk.JOINT_INDEX["right_hip"]]) / 2
    joints[sk.JOINT_INDEX["left_wrist"]] = np.nan
    source = np.full(sk.NUM_JOINTS, SOURCE_FUSED, np.uint8)
    source[sk.JOINT_INDEX["left_wrist"]] = SOURCE_INVALID
    return outputs.Person(
        f"p{number}",
        number,
        state,
        0.9,
        joints[sk.PELVIS].copy(),
        np.array([0.1, 0, 0.0]),
        joints,
        np.full(sk.NUM_JOINTS, 0.05),
        source,
        rng.uniform(0, 600, (sk.NUM_JOINTS, 2)),
        np.full(sk.NUM_JOINTS, 0.8),
    )


def roundtrip(msg):
    raw = T.store.serialize_cdr(msg, msg.__msgtype__)
    return T.store.deserialize_cdr(raw, msg.__msgtype__)


def test_skeleton_array_carries_every_joint_and_the_image_header():
    hdr = outputs.header(T, STAMP, FRAME)
    people = [person(1, CONFIRMED), person(2, TENTATIVE, x=1.0), person(3, ENDED)]
    msg = roundtrip(outputs.skeleton_array(T, hdr, people))
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == divmod(STAMP, 10**9) and msg.header.frame_id == FRAME
    assert list(msg.joint_names) == list(sk.JOINT_NAMES) and msg.skeleton == sk.SKELETON_NAME
    assert [s.id for s in msg.skeletons] == ["p1", "p2", "p3"]
    assert [s.track_state for s in msg.skeletons] == [CONFIRMED, TENTATIVE, ENDED]
    s, p = msg.skeletons[0], people[0]
    got = np.array([[j.x, j.y, j.z] for j in s.joints])
    np.testing.assert_allclose(got, p.joints, equal_nan=True)
    assert np.isnan(got[sk.JOINT_INDEX["left_wrist"]]).all() and len(got) == sk.NUM_JOINTS
    assert s.joint_source[sk.JOINT_INDEX["left_wrist"]] == SOURCE_INVALID
    np.testing.assert_allclose([s.root.x, s.root.y, s.root.z], p.root)
    np.testing.assert_allclose([[k.u, k.v] for k in s.keypoints], p.keypoints, rtol=1e-6)


def test_markers_lines_spheres_labels_delete_and_deleteall():
    hdr = outputs.header(T, STAMP, FRAME)
    M = T["visualization_msgs/msg/Marker"]
    shown = [person(4, CONFIRMED), person(7, COASTING, x=1.5), person(9, TENTATIVE)]
    msg = roundtrip(outputs.marker_array(T, hdr, shown, [person(2, ENDED)]))
    by = {(m.ns, m.id): m for m in msg.markers}
    assert {(m.ns, m.id, m.action) for m in msg.markers if m.action == M.DELETE} == {
        ("bones", 2, M.DELETE),
        ("joints", 2, M.DELETE),
        ("labels", 2, M.DELETE),
    }
    assert ("bones", 9) not in by  # tentative tracks are not drawn by default
    bones, joints, label = by[("bones", 4)], by[("joints", 4)], by[("labels", 4)]
    assert bones.type == M.LINE_LIST and joints.type == M.SPHERE_LIST and label.type == M.TEXT_VIEW_FACING
    assert len(bones.points) == 2 * (len(sk.BONES) - 1)  # the bone to the missing wrist is left out
    assert len(joints.points) == sk.NUM_JOINTS - 1
    assert label.text == f"p4 {np.linalg.norm(shown[0].root):.1f} m"
    head = shown[0].joints[sk.JOINT_INDEX["head"]]
    pos = label.pose.position
    assert (pos.x, pos.z) == pytest.approx((head[0], head[2])) and 0.2 < head[1] - pos.y < 0.4  # above (y down)
    assert (label.color.r, label.color.g, label.color.b, label.color.a) == (1.0, 1.0, 1.0, 1.0)
    assert 0.05 <= label.scale.z <= 0.3  # text height (m): readable beside a person, not taller than a head
    assert joints.scale.x == joints.scale.y == joints.scale.z and 0.03 <= joints.scale.x <= 0.1  # a joint-sized ball
    assert 0.01 <= bones.scale.x < joints.scale.x  # lines thinner than the balls
    assert bones.color.a == joints.color.a == 1.0  # confirmed: opaque
    assert by[("bones", 7)].color.a < bones.color.a  # coasting drawn faded
    assert (bones.color.r, bones.color.g, bones.color.b) != (
        by[("bones", 7)].color.r,
        by[("bones", 7)].color.g,
        by[("bones", 7)].color.b,
    )
    assert all(m.header.frame_id == FRAME for m in msg.markers)
    for m in msg.markers:  # identity orientation: RViz drops markers whose quaternion is not normalized
        q = m.pose.orientation
        assert (q.x, q.y, q.z, q.w) == (0.0, 0.0, 0.0, 1.0)
    for m in msg.markers:
        assert 0.0 <= min(m.color.r, m.color.g, m.color.b) and max(m.color.r, m.color.g, m.color.b) <= 1.0
    empty = roundtrip(outputs.marker_array(T, hdr, [], []))
    assert [m.action for m in empty.markers] == [M.DELETEALL]


def test_body_and_joint_frames_reconstruct_the_joints():
    hdr = outputs.header(T, STAMP, FRAME)
    p = person(5, CONFIRMED)
    tfs = [roundtrip(t) for t in outputs.transforms(T, hdr, [p, person(6, TENTATIVE)], joint_frames=True)]
    body = [t for t in tfs if t.child_frame_id == "body_p5"]
    assert len(body) == 1 and body[0].header.frame_id == FRAME
    assert not any(t.child_frame_id.endswith("_p6") for t in tfs)
    tr, q = body[0].transform.translation, body[0].transform.rotation
    R = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    assert np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0)
    joints = {t.child_frame_id: t for t in tfs if t.header.frame_id == "body_p5"}
    assert "left_wrist_p5" not in joints and "pelvis_p5" not in joints and len(joints) == sk.NUM_JOINTS - 2
    for name, t in joints.items():
        local = [t.transform.translation.x, t.transform.translation.y, t.transform.translation.z]
        world = R @ local + [tr.x, tr.y, tr.z]
        np.testing.assert_allclose(world, p.joints[sk.JOINT_INDEX[name.rsplit("_", 1)[0]]], atol=1e-9)
        jq = t.transform.rotation  # a joint frame is the body frame moved: the identity rotation
        assert [jq.x, jq.y, jq.z, jq.w] == [0.0, 0.0, 0.0, 1.0]
    msg = roundtrip(outputs.tf_message(T, tfs))
    assert len(msg.transforms) == len(tfs)
