"""The message layer: ROS messages in and out, and what drives the per-frame pipeline from them.

No ROS imports: everything here works on rclpy's message classes and on rosbags' alike (the node script,
``scripts/abspose_node``, is the only rclpy code). ``processor.FrameProcessor`` turns one frame of messages
into output messages for both the node and ``abspose run`` (``runner``, ``run_cli``).
"""
