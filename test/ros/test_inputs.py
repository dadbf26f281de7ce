"""sensor_msgs/Image -> arrays: strides, byte order, and every way a driver can get it wrong."""

import numpy as np
import pytest

from abspose.depth import DepthError
from abspose.image import ImageError
from abspose.ros.inputs import depth_array, image_array, stamp_ns
from abspose.ros.messages import MessageTypes
from abspose.ros.outputs import header

T = MessageTypes.rosbags()


def image_msg(array: np.ndarray, encoding: str, pad: int = 0, big: bool = False, **override):
    h, w = array.shape[:2]
    dt = array.dtype.newbyteorder(">" if big else "<")
    rows = array.astype(dt).reshape(h, -1).view(np.uint8)
    step = rows.shape[1] + pad
    data = np.zeros((h, step), np.uint8)
    data[:, : rows.shape[1]] = rows
    fields = dict(
        header=header(T, 1_500_000_000_123, "cam"),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(big),
        step=step,
        data=data.reshape(-1),
    )
    fields.update(override)
    return T.make("sensor_msgs/msg/Image", **fields)


def test_padded_rows_and_byte_orders_round_trip():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    out, enc = image_array(image_msg(rgb, "rgb8", pad=3))
    assert enc == "rgb8" and np.array_equal(out, rgb) and out.flags.writeable
    mm = rng.integers(0, 9000, (4, 6), dtype=np.uint16)
    for big in (False, True):
        out, _ = depth_array(image_msg(mm, "16UC1", pad=2, big=big))
        assert np.array_equal(out, mm) and out.dtype.isnative
    m = rng.uniform(0.5, 4, (4, 6)).astype(np.float32)
    m[0, 0] = np.nan
    out, enc = depth_array(image_msg(m, "32FC1", big=True))
    assert enc == "32FC1" and np.array_equal(out, m, equal_nan=True)
    assert stamp_ns(image_msg(rgb, "rgb8").header) == 1_500_000_000_123


def test_a_last_row_without_its_padding_is_read():
    """Some drivers send step * (h - 1) + width * pixel bytes: the last row's padding left off."""
    rng = np.random.default_rng(1)
    mm = rng.integers(0, 9000, (3, 4), dtype=np.uint16)
    msg = image_msg(mm, "16UC1", pad=6)
    msg.data = msg.data[: msg.step * 2 + 8]
    out, _ = depth_array(msg)
    assert np.array_equal(out, mm)


@pytest.mark.parametrize(("height", "width"), [(0, 5), (4, 0), (0, 0)])
def test_empty_images_are_refused(height, width):
    msg = image_msg(np.zeros((4, 5, 3), np.uint8), "rgb8", height=height, width=width)
    with pytest.raises(ImageError, match=rf"empty image \({width}x{height}\)"):
        image_array(msg)


def test_broken_images_raise_clear_errors():
    rgb = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ImageError, match="unsupported image encoding 'yuv422'"):
        image_array(image_msg(rgb, "yuv422"))
    with pytest.raises(ImageError, match="step 10 is smaller than"):
        image_array(image_msg(rgb, "rgb8", step=10))
    msg = image_msg(rgb, "rgb8")
    msg.data = msg.data[:-20]
    with pytest.raises(ImageError, match="truncated"):
        image_array(msg)
    with pytest.raises(ImageError, match="empty image"):
        image_array(image_msg(rgb, "rgb8", height=0))
    with pytest.raises(DepthError, match="unsupported depth encoding 'rgb8'"):
        depth_array(image_msg(rgb, "rgb8"))


def test_stamps_of_ros1_and_ros2_headers_and_their_limits():
    from types import SimpleNamespace as Ns

    from abspose.ros.inputs import check_header

    ros1 = Ns(stamp=Ns(secs=1_556_880_098, nsecs=522_459_261), frame_id="cam")
    ros2 = Ns(stamp=Ns(sec=1_556_880_098, nanosec=522_459_261), frame_id="cam")
    assert stamp_ns(ros1) == stamp_ns(ros2) == 1_556_880_098_522_459_261
    assert check_header(ros1) == check_header(ros2) == (1_556_880_098_522_459_261, "cam")
    assert check_header(Ns(stamp=Ns(sec=-(2**31), nanosec=0), frame_id="cam"))[0] == -(2**31) * 10**9
    for sec in (-(2**31) - 1, 2**31):
        with pytest.raises(ImageError, match="does not fit a ROS 2 time"):
            check_header(Ns(stamp=Ns(sec=sec, nanosec=0), frame_id="cam"))
