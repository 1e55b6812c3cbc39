"""aecf_ros.sim: the simulator's ROS side: scenes of ``aecf_ros.data`` as standard ROS messages
(``scene_msgs``), for make-bag, the demo, bench-runtime and the node tests. Imports ROS message
packages, never rclpy nodes, ``nodes/``, ``bag/`` or ``apps/``."""
