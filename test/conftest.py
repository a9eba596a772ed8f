"""Test-session set-up: DDS on loopback, in a DDS domain of this run's own.

Two transports run in the suite (DESIGN.md §3):
- Cyclone DDS, the `dds` backend, is the default here (VIDPLAN_TRANSPORT=dds), so the tests
  that predate the rclpy wheels run as before and need no ROS;
- rclpy (ROS 2 Jazzy wheels, `pip install -e .[ros]`, Fast DDS) is chosen explicitly by the
  tests that exercise it (`--backend rclpy` / `backend='rclpy'`, test_*_rclpy.py and
  test/transport/test_rclpy_*.py); they skip, with the reason, where rclpy does not import.
  rclpy needs no sourced environment: the wheels' ros-wheels-bootstrapper .pth re-executes
  Python once with LD_LIBRARY_PATH on their libraries, and rmw_fastrtps_cpp is the default.
Both vendors discover each other on the same ROS_DOMAIN_ID over RTPS on loopback.
"""

import os
import random

from vidplan_ros.transport.dds_config import LOCALHOST_CYCLONEDDS_XML

# Set before any participant exists (in this process and in every child it starts), so test
# runs on one machine never see each other and CI hosts without multicast still discover.
os.environ['CYCLONEDDS_URI'] = LOCALHOST_CYCLONEDDS_XML
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 99)))
os.environ.setdefault('VIDPLAN_TRANSPORT', 'dds')
# rcl (Jazzy) keeps Fast DDS discovery on this host, as the Cyclone config above does
# (rcl/src/rcl/discovery_options.c reads it when rclpy.init runs).
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
