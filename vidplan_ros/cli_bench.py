"""`vidplan bench <what> ...`: the benchmarks whose results are committed under benchmarks/."""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    'sim': 'vidplan_ros.sim.bench',              # physics steps/s, rendered frames/s
    'transport': 'vidplan_ros.transport.bench',  # DDS round-trip latency, (de)serialisation
    'grounding': 'vidplan_ros.eval.bench_grounding',  # ms per replan per grounding method
    'runtime': 'vidplan_ros.runtime.bench',      # encode / imagine / ground / replan per backend
    'graph': 'vidplan_ros.transport.bench_graph',  # camera-set hop, executor period, graph latency
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in BENCHES:
        print(f'usage: vidplan bench {{{",".join(BENCHES)}}} [options]  '
              '(--help after the name for its options)', file=sys.stderr)
        return 2
    return int(importlib.import_module(BENCHES[argv[0]]).main(argv[1:]) or 0)
