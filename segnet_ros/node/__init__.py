"""The ROS 2 adapter: messages to arrays and back, parameters, QoS and threading."""
