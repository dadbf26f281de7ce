"""abspose: metric 3D skeletons of every person a camera sees (ROS-free core of abspose_ros).

This folder is the per-frame runtime, in pipeline order: camera -> image -> detect2d -> depth (+ surface)
-> lifter -> fuse (= pipeline) -> track (+ smoothing, body_frame). Around it: ``abspose.ros`` (the message
layer), ``abspose.models`` (model importers and weights) and ``abspose.training`` (training and evaluating
the lifter; the runtime never imports it).
"""

__version__ = "0.1.0"
