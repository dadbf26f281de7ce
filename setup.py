"""pip install path: installs the message definitions next to the package (share/abspose_ros/msg), as colcon does."""

from glob import glob

from setuptools import setup

setup(data_files=[("share/abspose_ros/msg", sorted(glob("msg/*.msg")))])
