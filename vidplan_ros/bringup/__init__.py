"""What starts processes: the node graph shared with launch/ (`graph`), the supervisor of
`vidplan launch` (`supervisor`), start-up gates (`gate`) and the `vidplan launch` command
(`vidplan_launch`). ROS-free: `ros2 launch` files import `graph` only."""
