import numpy as np
import pytest
import torch

from abspose.image import (
    ImageError,
    dark_crops,
    dark_levels,
    default_encoding,
    read_image,
    rgb8_of,
    stretch_levels,
    tensor_to_rgb8,
    to_rgb8,
    to_rgb_tensor,
)

from conftest import darkened, data_path, png_claiming, read_rgb, with_lamp


def test_encodings_convert_to_rgb_channels():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    ref = torch.from_numpy(rgb).permute(2, 0, 1).float()
    torch.testing.assert_close(to_rgb_tensor(rgb, "rgb8"), ref)
    torch.testing.assert_close(to_rgb_tensor(rgb[..., ::-1], "bgr8"), ref)
    torch.testing.assert_close(to_rgb_tensor(np.dstack([rgb, rgb[..., :1]]), "rgba8"), ref)
    torch.testing.assert_close(to_rgb_tensor(np.dstack([rgb[..., ::-1], rgb[..., :1]]), "bgra8"), ref)
    grey = rgb[..., 0]
    out = to_rgb_tensor(grey, "mono8")
    assert out.shape == (3, 5, 7) and torch.equal(out[0], out[2])
    assert torch.equal(out[1], torch.from_numpy(grey).float())
    torch.testing.assert_close(to_rgb_tensor(grey.astype(np.uint16) * 257, "mono16"), out)


def test_default_encoding_by_shape_and_errors():
    assert default_encoding((4, 4)) == "mono8" and default_encoding((4, 4), True) == "mono16"
    assert default_encoding((4, 4, 3)) == "rgb8" and default_encoding((4, 4, 4)) == "rgba8"
    with pytest.raises(ImageError, match="shape"):
        default_encoding((4, 4, 2))
    # a single-channel HxWx1 array is a grey image, as HxW
    assert default_encoding((4, 4, 1)) == "mono8" and default_encoding((4, 4, 1), True) == "mono16"
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert torch.equal(to_rgb_tensor(grey[..., None]), to_rgb_tensor(grey))
    # one row or one column is an image; no rows or no columns is empty
    assert to_rgb_tensor(grey[:1]).shape == (3, 1, 4) and to_rgb_tensor(grey[:, :1]).shape == (3, 3, 1)
    for empty in (np.zeros((0, 5, 3), np.uint8), np.zeros((5, 0, 3), np.uint8), np.zeros((0, 0), np.uint8)):
        with pytest.raises(ImageError, match="empty"):
            to_rgb_tensor(empty)
    with pytest.raises(ImageError, match="32FC1"):
        to_rgb_tensor(np.zeros((4, 4), np.float32), "32FC1")
    with pytest.raises(ImageError, match="needs 1 channel"):
        to_rgb_tensor(np.zeros((4, 4, 3), np.uint8), "mono8")
    with pytest.raises(ImageError, match="uint16"):
        to_rgb_tensor(np.zeros((4, 4), np.uint8), "mono16")


def test_encoding_is_taken_from_the_array_when_not_given():
    grey8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert torch.equal(to_rgb_tensor(grey8), to_rgb_tensor(grey8, "mono8"))
    grey16 = grey8.astype(np.uint16) * 257  # the same grey levels, 16 bits
    torch.testing.assert_close(to_rgb_tensor(grey16), to_rgb_tensor(grey8, "mono8"))
    rgba = np.dstack([np.full((3, 4), v, np.uint8) for v in (10, 20, 30, 255)])
    assert to_rgb_tensor(rgba)[:, 0, 0].tolist() == [10, 20, 30]  # alpha dropped


def test_back_to_rgb8_rounds_clamps_and_keeps_the_layout():
    rgb = torch.tensor([[-5.0, 254.6, 300.0], [0.4, 127.5, 3.0]]).T.reshape(3, 1, 2)  # [3, H=1, W=2]
    out = tensor_to_rgb8(rgb)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3) and out.flags["C_CONTIGUOUS"]
    assert out.tolist() == [[[0, 255, 255], [0, 128, 3]]]
    bgr = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    assert to_rgb8(bgr, "bgr8").tolist() == [[[3, 2, 1], [6, 5, 4]]]


def test_rgb8_frames_are_taken_as_they_are_and_others_are_left_to_the_float_path():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert rgb8_of(rgb) is rgb and rgb8_of(rgb, "rgb8") is rgb  # contiguous rgb8: no copy at all
    strided = np.ascontiguousarray(np.concatenate([rgb, rgb], 1))[:, ::2]
    got = rgb8_of(strided)
    assert got.flags.c_contiguous and np.array_equal(got, strided)
    bgr = rgb8_of(rgb[..., ::-1], "bgr8")
    assert bgr.flags.c_contiguous and np.array_equal(bgr, rgb)
    assert np.array_equal(bgr, tensor_to_rgb8(to_rgb_tensor(rgb[..., ::-1].copy(), "bgr8")))  # as the float path
    for image, encoding in [
        (rgb, "rgba8"),  # an encoding that does not fit: to_rgb_tensor names the mismatch
        (rgb, "mono8"),
        (rgb.astype(np.uint16), None),
        (rgb[..., 0], None),
        (np.zeros((0, 7, 3), np.uint8), None),  # empty: to_rgb_tensor refuses it
        (torch.from_numpy(rgb), None),
    ]:
        assert rgb8_of(image, encoding) is None


def test_image_files_are_read_as_rgb_and_bombs_refused_by_their_header(tmp_path):
    from PIL import Image

    Image.new("L", (3, 2), 7).save(tmp_path / "grey.png")
    img = read_image(tmp_path / "grey.png")
    assert img.shape == (2, 3, 3) and img.dtype == np.uint8 and (img == 7).all()
    with pytest.raises(ValueError, match=r"bomb\.png: image is 13000x13000 = 169 MP, more than 64 MP"):
        read_image(png_claiming(tmp_path / "bomb.png", 13000, 13000))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"text\.png: cannot read image"):
        read_image(tmp_path / "text.png")


def test_a_dark_frame_is_stretched_to_the_full_range_and_a_bright_one_left_alone():
    photo = read_rgb(data_path("images", "tue_people_recognition", "example_group_photo.jpg"))
    assert dark_levels(to_rgb_tensor(photo), 64.0) is None  # its bright end is at 248
    # a dim room (the light x 0.01: the brightest grey level 25) over a camera's black level of 10
    dark = darkened(photo, 0.01) + np.uint8(10)
    assert 10 <= dark.min() and dark.max() <= 36
    assert dark_levels(to_rgb_tensor(dark), 20.0) is None  # 20: only darker frames count
    black, gain, lights = dark_levels(to_rgb_tensor(dark), 64.0)
    assert not lights
    low, high = np.percentile(dark.mean(axis=2), [0.5, 99.5])  # of every pixel; dark_levels samples a grid
    assert abs(black - low) < 0.7 and abs(gain * (high - low) / 255 - 1) < 0.04
    rgb, none = stretch_levels(to_rgb_tensor(dark), None, black, gain)
    assert none is None and rgb.dtype == torch.float32
    torch.testing.assert_close(rgb, ((to_rgb_tensor(dark) - black) * gain).clamp(0, 255))
    grey = rgb.mean(dim=0)
    assert float((grey >= 255).float().mean()) < 0.01  # not blown out
    # the uint8 frame through a table gives the float path's grey levels, rounded
    view, frame = stretch_levels(torch.from_numpy(dark).permute(2, 0, 1), dark, black, gain)
    assert frame.dtype == np.uint8 and frame.shape == dark.shape and view.data_ptr() == frame.ctypes.data
    assert np.abs(frame.astype(np.float32) - tensor_to_rgb8(rgb)).max() == 0
    # a 12-bit camera's mono16 frame (grey levels 0..4095 read as 0..16 of 255) is dark too
    mono12 = (photo.mean(axis=2) * 16).astype(np.uint16)
    assert dark_levels(to_rgb_tensor(mono12, "mono16"), 64.0) is not None
    # the level is where a frame stops being dark; a flat frame keeps a finite gain (its range taken as 1)
    flat = to_rgb_tensor(np.full((48, 64, 3), 31, np.uint8))
    assert dark_levels(flat + 1, 32.0) is None and dark_levels(flat, 32.0) == (31.0, 255.0, False)


def test_a_dark_frame_with_lights_is_stretched_by_its_dark_part_and_a_lit_one_left_alone():
    photo = read_rgb(data_path("images", "tue_people_recognition", "example_group_photo.jpg"))
    dark = darkened(photo, 0.01) + np.uint8(10)  # over a camera's black level of 10
    # a lamp on 1 % of the frame: the brightest grey level white, the 95th percentile of the rest still dark
    lamp = with_lamp(dark, 0.01, (0.5, 0.05))
    black, gain, lights = dark_levels(to_rgb_tensor(lamp), 32.0)
    low, lit = np.percentile(lamp.mean(axis=2), [0.5, 95])
    assert lights and abs(black - low) < 0.7 and abs(gain * (lit - low) / 255 - 1) < 0.04
    # a larger one (a window) on a twentieth of it and its glow: the dark part ends at the 75th percentile
    window = with_lamp(dark, 0.05, (0.5, 0.5))
    black, gain, lights = dark_levels(to_rgb_tensor(window), 32.0)
    low, lit = np.percentile(window.mean(axis=2), [0.5, 75])
    assert lights and abs(black - low) < 0.7 and abs(gain * (lit - low) / 255 - 1) < 0.04
    # lights on more than a quarter of it: not a dark frame
    assert dark_levels(to_rgb_tensor(with_lamp(dark, 0.1, (0.5, 0.5))), 32.0) is None
    # a dim frame (the light x 0.02): its 95th percentile below the level, its brightest pixels (37) just above,
    # not four times above: no lights, not dark (a second look there lost 2 of the 9 people)
    dim = to_rgb_tensor(darkened(photo, 0.02))
    assert np.percentile(darkened(photo, 0.02).mean(axis=2), 95) < 32.0 and dark_levels(dim, 32.0) is None
    # lights are 4 x the level bright: a flat dark frame with 1 % of it at grey 127 is not dark, at 128 it has lights
    spots = np.full((100, 100, 3), 10, np.uint8)
    spots[:1] = 127
    assert dark_levels(to_rgb_tensor(spots), 32.0) is None
    spots[:1] = 128
    assert dark_levels(to_rgb_tensor(spots), 32.0)[2]


def test_a_crop_is_dark_where_the_brightest_quarter_of_its_box_is():
    crops = torch.full((5, 3, 64, 64), 5.0)
    inside = torch.zeros(5, 64, 64, dtype=torch.bool)
    inside[:, 16:48, 16:48] = True  # a 32 x 32 box in each
    crops[0, :, 16:48, 36:48] = 200.0  # a lit person on 3/8 of its box (12 of its 32 columns)
    crops[1, :, 16:48, 40:48] = 200.0  # lit on a quarter of it, no more: dark
    crops[2, :, 16:48, 44:48] = 200.0  # a lamp on an eighth of a dark person's box
    crops[3, :, :16] = 255.0  # bright outside the box only
    crops[4] = 31.0  # just below the level; and no box at all (nothing inside): not dark
    inside[4] = False
    assert dark_crops(crops, 32.0, inside).tolist() == [False, True, True, True, False]
    everywhere = torch.ones(1, 64, 64, dtype=torch.bool)
    assert dark_crops(crops[4:], 32.0, everywhere).tolist() == [True]
    assert dark_crops(crops[4:] + 1, 32.0, everywhere).tolist() == [False]
