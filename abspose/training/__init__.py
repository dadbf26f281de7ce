"""Everything that only trains or evaluates the lifter: mocap loaders, the cached pose set, sample
synthesis and 2D noise, training, metrics, the evaluation tables and rendered RGB-D scenes.

The runtime (``abspose.pipeline``, ``abspose.ros``) never imports this package; a test checks it.
"""
