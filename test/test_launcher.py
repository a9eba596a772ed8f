"""The `vidplan launch` supervisor: prefixed logs, required-node death, clean Ctrl-C."""

import io
import signal
import subprocess
import sys
import textwrap
import time

from vidplan_ros.bringup.supervisor import ProcessSpec, Supervisor

PY = sys.executable
SLEEPER = ('import signal, sys, time\n'
           'signal.signal(signal.SIGINT, lambda *a: (print("bye", flush=True), sys.exit(0)))\n'
           'print("up", flush=True)\n'
           'time.sleep(60)\n')


def test_required_node_death_stops_the_graph_with_its_code():
    out = io.StringIO()
    sup = Supervisor([ProcessSpec('sleeper', (PY, '-c', SLEEPER)),
                      ProcessSpec('crasher', (PY, '-c', 'import time, sys\ntime.sleep(0.5)\n'
                                              'print("failing", flush=True)\nsys.exit(3)'))],
                     out=out, grace_s=2.0)
    t0 = time.monotonic()
    code = sup.run()
    assert code == 3
    assert time.monotonic() - t0 < 10
    log = out.getvalue()
    assert '[crasher] failing' in log and 'exited with code 3' in log
    assert '[sleeper] up' in log and '[sleeper] bye' in log  # stopped with SIGINT, cleanly
    assert all(p.poll() is not None for p in sup.procs.values())


def test_optional_node_may_exit_and_clean_end_is_zero():
    out = io.StringIO()
    sup = Supervisor([ProcessSpec('tool', (PY, '-c', 'import sys; sys.exit(1)'), required=False),
                      ProcessSpec('job', (PY, '-c', 'import time; time.sleep(0.5)'))], out=out)
    assert sup.run() == 0
    assert {e.name: e.returncode for e in sup.exits} == {'tool': 1, 'job': 0}


def test_ctrl_c_stops_every_node_and_exits_zero():
    code = textwrap.dedent(f"""
        import sys
        from vidplan_ros.bringup.supervisor import ProcessSpec, run_graph
        sleeper = {SLEEPER!r}
        sys.exit(run_graph([ProcessSpec('a', (sys.executable, '-c', sleeper)),
                            ProcessSpec('b', (sys.executable, '-c', sleeper))]))
    """)
    proc = subprocess.Popen([PY, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    while sum(line.rstrip().endswith('] up') for line in lines) < 2:
        lines.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, rest
    assert rest.count('bye') == 2
