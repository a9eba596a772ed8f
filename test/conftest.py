"""Test-session set-up: DDS on loopback, in a DDS domain of this run's own."""

import os
import random

from vidplan_ros.transport.dds_config import LOCALHOST_CYCLONEDDS_XML

# Set before any participant exists (in this process and in every child it starts), so test
# runs on one machine never see each other and CI hosts without multicast still discover.
os.environ['CYCLONEDDS_URI'] = LOCALHOST_CYCLONEDDS_XML
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 99)))
os.environ.setdefault('VIDPLAN_TRANSPORT', 'dds')
