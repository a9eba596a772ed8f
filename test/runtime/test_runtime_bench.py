"""runtime.bench (`vidplan bench runtime`): structure only, no timing assertions (the machine
is shared); two replans per variant on one model set."""

from __future__ import annotations

import json

import pytest

from vidplan_ros.runtime.bench import STAGES, main, stats

pytest.importorskip('onnxruntime')


def test_stats_are_percentiles_in_ms():
    s = stats([0.001 * k for k in range(1, 101)])
    assert s['p50'] == pytest.approx(50.5) and s['p99'] == pytest.approx(99.01)
    assert s['n'] == 100 and s['mean'] == pytest.approx(50.5)


def test_bench_runtime_writes_json_and_markdown_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setenv('VIDPLAN_CACHE', str(tmp_path / 'cache'))
    out, md = tmp_path / 'r.json', tmp_path / 'r.md'
    assert main(['--models', 'g1_reach', '--backends', 'torch', 'onnxruntime', '--replans',
                 '2', '--threads', '1', '--out', str(out), '--md', str(md),
                 '--no-progress']) == 0
    result = json.loads(out.read_text())
    assert result['command'].startswith('vidplan bench runtime --models g1_reach')
    assert len(result['git']['commit']) == 40 and result['machine']['cpu_count'] >= 1
    mod = result['models'][0]
    assert {'torch', 'onnxruntime'} <= set(mod['stages_ms'])
    for st in mod['stages_ms'].values():
        assert set(st) == set(STAGES) and all(st[s]['n'] == 2 for s in STAGES)
    assert mod['p50_ratio_to_torch']['torch']['replan'] == pytest.approx(1.0)
    assert mod['backends']['onnxruntime']['providers'] == ['CPUExecutionProvider']
    assert 'sampler graph (1 call)' in mod['micro']['imagine_onnxruntime']
    text = md.read_text()
    assert '| onnxruntime |' in text and 'Load average' in text and result['command'] in text
