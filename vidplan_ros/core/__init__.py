"""ROS-free core: config, robot specs, types, errors, kinematics, grounding, executor logic."""
