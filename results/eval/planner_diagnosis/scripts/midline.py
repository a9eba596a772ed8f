"""g1/reach success by the target's distance from the midline, from a `vidplan eval` results.json.

    .venv/bin/python results/eval/planner_diagnosis/scripts/midline.py RESULTS.json \
        [--within-m 0.035]

Each seed's target is drawn again by resetting the sim task (as `vidplan eval` did).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from vidplan_ros.sim.env import SimConfig, SimEnv


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('results')
    p.add_argument('--within-m', type=float, default=0.035)
    a = p.parse_args()
    episodes = [e for e in json.load(open(a.results))['episodes']
                if e['plan_source'] == 'learned' and e['corruption'] == 'none']
    env = SimEnv(SimConfig(robot='unitree_g1', task='g1/reach', cameras=('head',),
                           image_width=16, image_height=16))
    near: dict[int, bool] = {}
    for seed in sorted({e['seed'] for e in episodes}):
        env.reset(seed)
        near[seed] = abs(float(env.task_state().target_pos_m[1])) < a.within_m
    env.close()
    counts: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0])
    for e in episodes:
        c = counts[(e['method'], near[e['seed']])]
        c[0] += bool(e['success'])
        c[1] += 1
    print(f'| method | target within {100 * a.within_m:.1f} cm of the midline | elsewhere |')
    print('|---|---|---|')
    for method in sorted({m for m, _ in counts}):
        n, f = counts[(method, True)], counts[(method, False)]
        print(f'| {method} | {n[0]}/{n[1]} | {f[0]}/{f[1]} |')


if __name__ == '__main__':
    main()
