import numpy as np
import pytest
import torch

from abspose.image import ImageError, default_encoding, to_rgb_tensor


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
    with pytest.raises(ImageError, match="empty"):
        to_rgb_tensor(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="32FC1"):
        to_rgb_tensor(np.zeros((4, 4), np.float32), "32FC1")
    with pytest.raises(ImageError, match="needs 1 channel"):
        to_rgb_tensor(np.zeros((4, 4, 3), np.uint8), "mono8")
    with pytest.raises(ImageError, match="uint16"):
        to_rgb_tensor(np.zeros((4, 4), np.uint8), "mono16")
