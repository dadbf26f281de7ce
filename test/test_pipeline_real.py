"""The whole core on the real TU/e RGB-D frames: detector, depth readout, lifter with depth, fusion."""

import numpy as np
import pytest
import torch

from abspose import skeleton as sk
from abspose.camera import load_camera_info
from abspose.depth import DepthError
from abspose.fuse import SOURCE_FUSED, SOURCE_LIFTED, FuseConfig
from abspose.lifter import Lifter
from abspose.pipeline import Pipeline, PipelineConfig

from conftest import TUE_FRAMES, data_path, read_depth_mm, read_rgb


@pytest.fixture(scope="module")
def pipeline(blazepose):
    """The fusion tests run on mediapipe's own pipeline (the parity front-end): landmarks fixed to mediapipe's,
    so what they hold is fusion. (With NanoDet's ROIs the near person's pelvis readout is rejected in 2 of the
    5 frames and the pelvis lifted; the root stays within 0.104 m of the surface.)"""
    return Pipeline(PipelineConfig(device="cpu"), detector=blazepose(detector="blazepose"), lifter=Lifter.load())


def _frame(stamp):
    frames = data_path("rgbd", "tue_hero", "frames")
    return (
        read_rgb(frames / f"{stamp}_rgb.png"),
        np.load(frames / f"{stamp}_depth_m.npy"),
        load_camera_info(frames / f"{stamp}_camera_info.json"),
        frames / f"{stamp}_depth_mm.png",
    )


@pytest.mark.parametrize("stamp", TUE_FRAMES)
def test_fused_pelvis_sits_on_the_depth_surface_and_holes_are_lifted(stamp, pipeline):
    rgb, depth, cam, _ = _frame(stamp)
    people = pipeline(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1")
    assert len(people) >= 1
    near = int(torch.argmin(people.root[:, 2]))
    u, v = people.keypoints[near, sk.PELVIS].round().int().tolist()
    surface = float(np.nanmedian(depth[v - 8 : v + 9, u - 8 : u + 9]))
    pelvis_z = float(people.root[near, 2])
    assert abs(pelvis_z - surface) < 0.10, f"fused pelvis {pelvis_z:.3f} m, depth surface {surface:.3f} m"
    assert people.source[near, sk.PELVIS] == SOURCE_FUSED
    # joints whose depth readout is a hole (NaN) are still produced, by the lifter
    seen = people.confidence[near] >= 0.5
    holes = seen & torch.isnan(people.depth[near])
    assert torch.isfinite(people.joints[near][seen]).all()
    assert (people.source[near][holes] == SOURCE_LIFTED).all()


@pytest.fixture(scope="module")
def unoriented(pipeline):
    """The same models, the surface model cast at the lifted body as the lifter turned it (depth.orient off)."""
    return Pipeline(
        PipelineConfig(device="cpu", fuse=FuseConfig(orient=False)), detector=pipeline.detector, lifter=pipeline.lifter
    )


@pytest.mark.parametrize("stamp", TUE_FRAMES)
def test_torso_plane_faces_the_camera_and_turning_the_body_to_it_keeps_the_pelvis_nearer(stamp, pipeline, unoriented):
    """The TU/e person's shirt is a flat plane facing the camera within a few degrees while the lifter turns
    the body 30 deg; the surface model cast at the body turned to the plane (the default) puts the pelvis
    nearer the surface than cast at the lifter's body (8.6-9.6 vs 9.1-11.6 cm on these frames)."""
    rgb, depth, cam, _ = _frame(stamp)
    found = {}
    for name, pipe in (("default", pipeline), ("unoriented", unoriented)):
        pipe.detector.reset()  # each frame on its own (the snapshots are ~40 s apart)
        people = pipe(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1")
        found[name] = people, int(torch.argmin(people.root[:, 2]))
    people, near = found["default"]
    ideal = cam.undistort_pixels(people.keypoints[near : near + 1].double()).float()
    readout = pipeline.read_depth(ideal, people.confidence[near : near + 1] >= 0.5, cam, depth, "32FC1", None)
    normal = readout.torso_normal[0]
    yaw = float(torch.rad2deg(torch.atan2(normal[0], -normal[2])))
    assert abs(yaw) < 10.0 and float(readout.torso_sigma[0]) < 0.05, (yaw, readout.torso_sigma)
    u, v = people.keypoints[near, sk.PELVIS].round().int().tolist()
    surface = float(np.nanmedian(depth[v - 8 : v + 9, u - 8 : u + 9]))
    behind = {name: float(p.root[i, 2]) - surface for name, (p, i) in found.items()}
    assert 0.0 < behind["default"] <= behind["unoriented"], behind


def test_some_joints_fall_in_depth_holes():
    """The frames are ~66 % invalid depth: the hole path above is really exercised."""
    from abspose.detect2d import BlazePose

    detector = BlazePose("cpu")
    pipe = Pipeline(PipelineConfig(device="cpu"), detector=detector, lifter=Lifter.load())
    holes = 0
    for stamp in TUE_FRAMES:
        rgb, depth, cam, _ = _frame(stamp)
        people = pipe(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1")
        holes += int(((people.confidence >= 0.5) & torch.isnan(people.depth)).sum())
    assert holes > 0


def test_millimetre_png_gives_the_same_people_as_metres(pipeline):
    rgb, depth, cam, png = _frame(TUE_FRAMES[0])
    mm = read_depth_mm(png)
    a = pipeline(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1")
    b = pipeline(rgb, cam, "rgb8", depth=mm, depth_encoding="16UC1")
    assert torch.allclose(a.root, b.root, atol=0.01)
    with pytest.raises(DepthError, match="give the depth CameraInfo"):
        pipeline(rgb, cam, "rgb8", depth=depth[::2, ::2].copy(), depth_encoding="32FC1")


def test_the_pipeline_runs_the_models_and_settings_it_is_given(blazepose):
    detector, lifter = blazepose(detector="blazepose"), Lifter.load()
    cfg = PipelineConfig(device="cpu", use_depth=False, flip_average=False)
    pipe = Pipeline(cfg, detector=detector, lifter=lifter)
    assert pipe.cfg is cfg and pipe.detector is detector and pipe.lifter is lifter and not lifter.flip_average
    rgb, depth, cam, _ = _frame(TUE_FRAMES[1])
    people = pipe(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1")
    assert len(people) >= 1 and not (people.source == SOURCE_FUSED).any()  # use_depth off: the image is ignored
    assert torch.isnan(people.depth).all()


def test_monocular_and_rgbd_agree_on_the_near_person(pipeline):
    rgb, depth, cam, _ = _frame(TUE_FRAMES[1])
    mono = pipeline(rgb, cam, "rgb8")
    rgbd = pipeline(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1")
    assert (mono.source[mono.confidence >= 0.5] == SOURCE_LIFTED).all()
    near = int(torch.argmin(rgbd.root[:, 2]))
    assert abs(float(mono.root[near, 2] - rgbd.root[near, 2])) / float(rgbd.root[near, 2]) < 0.15


def test_monocular_distance_of_real_people_matches_their_depth(blazepose):
    """Every person the NanoDet front-end finds in the 5 TU/e frames whose depth fusion used ≥ 6 joints (the
    near person, the far ones at ~3.4 and ~10 m): the monocular pelvis depth against the depth-fused one.
    Measured: median ratio 1.033 with the nine-kind and the eight-kind made-postures checkpoints and the one before
    them (the first stature-prior checkpoint 1.041, the one before it 1.066); the issue's
    bound is 5 %."""
    pipe = Pipeline(PipelineConfig(device="cpu"), detector=blazepose(), lifter=Lifter.load())
    ratios = []
    for stamp in TUE_FRAMES:
        rgb, depth, cam, _ = _frame(stamp)
        rgbd = pipe(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1")
        mono = pipe(rgb, cam, "rgb8")
        assert len(mono) == len(rgbd)  # the same people (the detector does not track: one image each)
        measured = (rgbd.source == SOURCE_FUSED).sum(1) >= 6
        ratios += (mono.root[measured, 2] / rgbd.root[measured, 2]).tolist()
    assert len(ratios) >= 8
    assert abs(float(np.median(ratios)) - 1) < 0.05, ratios


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (fp16 is a CUDA path)")
@pytest.mark.parametrize("stamp", TUE_FRAMES[:2])
def test_fp16_on_cuda_matches_fp32(stamp, pipeline):
    """fp16 detector (PipelineConfig.half) on the GPU against the fp32 CPU pipeline on the same RGB-D frame.
    Stated tolerance: 2D keypoints within 1.5 px median / 4 px worst, pelvis within 2 cm."""
    rgb, depth, cam, _ = _frame(stamp)
    ref = pipeline(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1").cpu()
    fp16 = Pipeline(PipelineConfig(device="cuda", half=True))
    assert fp16.detector.dtype == torch.float16
    got = fp16(rgb, cam, "rgb8", depth=depth, depth_encoding="32FC1").cpu()
    assert len(got) == len(ref) >= 1
    ok = torch.isfinite(ref.keypoints).all(-1) & torch.isfinite(got.keypoints).all(-1)
    d = (got.keypoints - ref.keypoints).norm(dim=-1)[ok]
    assert float(d.median()) < 1.5 and float(d.max()) < 4.0
    assert float((got.root - ref.root).norm(dim=-1).max()) < 0.02
