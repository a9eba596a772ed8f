"""Cyclone DDS configuration snippets (environment only; no cyclonedds import here).

``CYCLONEDDS_URI`` is read when a process creates its first DomainParticipant, so set it
before that, or pass :func:`localhost_env` as the environment of a child process.
"""

import os
from collections.abc import Mapping
from typing import Optional

# Loopback only, no multicast, unicast discovery to 127.0.0.1 (participant index 0..50 probed).
# Works on hosts/CI containers where multicast on lo is unavailable. Domain id is left to
# the DomainParticipant (``Domain id="any"``).
LOCALHOST_CYCLONEDDS_XML = (
    '<CycloneDDS><Domain id="any">'
    '<General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
    '<AllowMulticast>false</AllowMulticast></General>'
    '<Discovery><ParticipantIndex>auto</ParticipantIndex>'
    '<MaxAutoParticipantIndex>50</MaxAutoParticipantIndex>'
    '<Peers><Peer address="127.0.0.1"/></Peers></Discovery>'
    '</Domain></CycloneDDS>'
)


def localhost_env(base_env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """A copy of ``base_env`` (default ``os.environ``) with CYCLONEDDS_URI set to loopback."""
    env = dict(os.environ if base_env is None else base_env)
    env['CYCLONEDDS_URI'] = LOCALHOST_CYCLONEDDS_XML
    return env


__all__ = ['LOCALHOST_CYCLONEDDS_XML', 'localhost_env']
