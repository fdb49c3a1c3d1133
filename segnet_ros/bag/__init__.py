"""``segnet-ros bag``'s machinery: rosbag2 in, segmented rosbag2 out, without ROS.

It sits beside the CLI on the ROS-free core (never on :mod:`segnet_ros.node`) and reads and writes
bags with the pure-Python ``rosbags`` library (the ``bag`` extra), so it runs in a plain virtual
environment: no rclpy, no sourced ROS install. The modules:

- :mod:`.typestore`: the message types (rosbags' store, plus vision_msgs from our .msg files);
- :mod:`.decode`: Image / CompressedImage payloads to arrays (the node's rules, ROS-free);
- :mod:`.reader`: topics, types and frames of a bag folder, ``.mcap`` or ``.db3`` file;
- :mod:`.topics`: which image topics are segmented, and the namespace of each one's outputs;
- :mod:`.writer`: the output bag (MCAP), written aside and moved into place when complete;
- :mod:`.pipeline`: decode -> inference -> render/write on three threads, every frame, in order.
"""

from .typestore import BagError

__all__ = ["BagError"]
