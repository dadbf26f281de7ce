"""abspose: metric 3D skeletons of every person a camera sees (ROS-free core of abspose_ros).

Pipeline, one module per step: camera -> detect2d -> depth -> lift -> fuse -> track -> outputs.
"""

__version__ = "0.1.0"
