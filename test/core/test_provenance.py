"""core.provenance: the one record of machine, commit and command behind every benchmark."""

from __future__ import annotations

import os
import re

from vidplan_ros.core import provenance


def test_machine_info_names_cpu_cores_load_and_asked_packages():
    info = provenance.machine_info(packages=('numpy', 'no-such-dist-xyz'))
    assert info['cpu_count'] == os.cpu_count()
    assert info['cpu'] and info['python'].count('.') == 2
    assert len(info['loadavg']) == 3 and info['load_average_1min_at_start'] == info['loadavg'][0]
    import numpy as np
    assert info['numpy'] == np.__version__ and info['no-such-dist-xyz'] == 'unknown'


def test_git_state_is_this_checkout():
    state = provenance.git_state()
    assert re.fullmatch(r'[0-9a-f]{40}', state['commit'])
    assert isinstance(state['dirty'], bool)


def test_provenance_records_the_exact_command():
    rec = provenance.provenance(['vidplan', 'bench', 'runtime', '--model', 'a b'])
    assert rec['command'] == "vidplan bench runtime --model 'a b'"
    assert rec['git'] == provenance.git_state() and 'machine' in rec
    assert rec['started_utc'].endswith('+00:00')


def test_the_benchmarks_share_it():
    from vidplan_ros.sim.bench import machine_info as sim_machine
    from vidplan_ros.transport.bench import machine_info as dds_machine
    assert set(provenance.machine_info()) <= set(sim_machine()) and 'mujoco' in sim_machine()
    assert 'cyclonedds' in dds_machine()
