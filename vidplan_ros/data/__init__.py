"""Episodes and ROS 2 bags (through the `rosbags` library) and dataset building."""
