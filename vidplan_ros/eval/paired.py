"""Paired comparison of grounding methods on the same seeds (McNemar's exact test).

Two methods run on the same seeds, plan source and corruption share each episode's scene, so
the question "is A better than B" is about the seeds where exactly one of them succeeded (the
discordant pairs). With b seeds only A succeeded and c only B, under "no difference" each
discordant seed is a fair coin: the exact two-sided p-value is the binomial tail
``min(1, 2 P[X <= min(b, c)])``, ``X ~ Binomial(b + c, 1/2)``. Two 50-seed success rates whose
Wilson intervals overlap can still differ clearly when the discordant seeds all go one way;
and rates 10 points apart can be noise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from typing import Any

__all__ = ['mcnemar_exact_p', 'paired_rows', 'paired_markdown']

# not a grounding method: the expert's chunks straight into the executor
_SKIP = ('expert_executor',)


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f'discordant counts must be >= 0, got {only_a}, {only_b}')
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def paired_rows(episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of methods run on the same seeds, per (plan source, corruption): counts of
    seeds both / only A / only B / neither succeeded and the exact McNemar p-value."""
    outcome: dict[tuple[str, str], dict[str, dict[int, bool]]] = defaultdict(dict)
    for e in episodes:
        if e['method'] in _SKIP:
            continue
        group = (e.get('plan_source', 'learned'), e['corruption'])
        outcome[group].setdefault(e['method'], {})[int(e['seed'])] = bool(e['success'])
    rows = []
    for (source, corruption), by_method in outcome.items():
        for a, b in combinations(list(by_method), 2):
            seeds = sorted(set(by_method[a]) & set(by_method[b]))
            if not seeds:
                continue
            sa = [by_method[a][s] for s in seeds]
            sb = [by_method[b][s] for s in seeds]
            only_a = sum(x and not y for x, y in zip(sa, sb))
            only_b = sum(y and not x for x, y in zip(sa, sb))
            both = sum(x and y for x, y in zip(sa, sb))
            rows.append({'plan_source': source, 'corruption': corruption, 'a': a, 'b': b,
                         'seeds': len(seeds), 'both': both, 'only_a': only_a, 'only_b': only_b,
                         'neither': len(seeds) - both - only_a - only_b,
                         'p_value': mcnemar_exact_p(only_a, only_b)})
    return rows


def paired_markdown(episodes: list[dict[str, Any]]) -> list[str]:
    """The report section (no lines when fewer than two methods share seeds)."""
    rows = paired_rows(episodes)
    if not rows:
        return []
    lines = ['', '## Paired comparison on the same seeds', '',
             '| plan | corruption | A vs B | seeds | both | only A | only B | neither | '
             'exact McNemar p |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['plan_source']} | {r['corruption']} | {r['a']} vs {r['b']} | "
                     f"{r['seeds']} | {r['both']} | {r['only_a']} | {r['only_b']} | "
                     f"{r['neither']} | {r['p_value']:.3f} |")
    lines += ['', 'Only the seeds where exactly one method succeeded tell the methods apart; p is '
              'the chance of a split at least this uneven if neither were better '
              '(vidplan_ros/eval/paired.py).']
    return lines
