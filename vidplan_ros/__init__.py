"""vidplan_ros: plan by imagining — latent video planning grounded by a world model, for ROS 2.

The ROS-free packages (`core`, `nn`, `runtime`, `sim`, `data`) never import rclpy or message
packages; `nodes` are thin adapters and `transport` hides rclpy vs Cyclone DDS.
"""

__version__ = '0.1.0'
