"""The ROS 2 nodes as thin adapters: params -> core object -> topics, over any transport."""
