"""`vidplan eval`: a tiny real run writes every file; results round-trip; workers agree."""

import json
import math

import pytest

from vidplan_ros import cli
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.executor import ExecutorConfig
from vidplan_ros.runtime.pipeline import model_dir_for
from vidplan_ros.eval.eval_report import (episode_outcome, load_results, summarize,
                                             to_markdown, wilson_interval)
from vidplan_ros.eval.evaluate import (GATE_OFF_RESIDUAL, EvalConfig, executor_config_for,
                                          parse_seeds, run_eval)

TINY = ['--task', 'franka/reach', '--methods', 'gvp_wm,inverse_dynamics', '--corruptions',
        'frame_drop', '--seeds', '10000', '--max-time-s', '1', '--video', '1', '--no-progress']


def _same(a, b):
    """Equal, with nan == nan."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp('eval')
    assert cli.main(['eval', *TINY, '--out', str(out)]) == 0
    return out


def test_tiny_run_writes_every_file(tiny):
    for name in ('results.json', 'results.md', 'success.png', 'latency.png',
                 'videos/gvp_wm__frame_drop.mp4', 'videos/inverse_dynamics__frame_drop.mp4'):
        assert (tiny / name).stat().st_size > 0, name
    assert not (tiny / 'videos' / 'parts').exists()
    result = json.loads((tiny / 'results.json').read_text())
    assert result['command'].startswith('vidplan eval --task franka/reach')
    assert result['config']['max_time_s'] == 1.0 and result['config']['seeds'] == [10000]
    assert len(result['git'].get('commit', '')) in (0, 40)
    assert result['machine']['cpu_count'] >= 1
    assert [(e['method'], e['corruption'], e['seed']) for e in result['episodes']] == [
        ('gvp_wm', 'frame_drop', 10000), ('inverse_dynamics', 'frame_drop', 10000)]
    for e in result['episodes']:
        assert e['replans'] == 5 and len(e['timings_ms']['ground']) == 5
        assert 0.99 <= e['duration_s'] <= 1.01
        # closest approach: checked at every replan, so never above the final distance
        assert 0 < e['closest_distance_m'] <= e['final_distance_m']
    for row, e in zip(result['summary'], result['episodes']):   # one episode per row
        if not e['success']:
            assert row['failed_median_closest_distance_m'] == e['closest_distance_m']


def test_markdown_has_the_table(tiny):
    md = (tiny / 'results.md').read_text()
    assert '| method | plan | corruption | success | 95% CI |' in md
    assert '| gvp_wm | learned | frame_drop |' in md
    assert '| inverse_dynamics | learned | frame_drop |' in md
    assert 'Latency: frozen' in md
    assert 'vidplan eval --task franka/reach' in md
    assert '| learned | frame_drop | gvp_wm vs inverse_dynamics | 1 |' in md   # paired


def test_results_round_trip(tiny):
    loaded = load_results(tiny)
    assert to_markdown(loaded) == (tiny / 'results.md').read_text()
    assert _same(summarize(loaded['episodes']), loaded['summary'])
    for e in loaded['episodes']:
        outcome = episode_outcome(e)
        assert outcome.method == e['method'] and outcome.seed == 10000
        assert isinstance(outcome.mean_alignment, float)


def test_workers_agree_with_one_process(tiny, tmp_path):
    """Two worker processes give the episodes of the in-process run (sim time, seeded)."""
    cfg = EvalConfig(task='franka/reach', methods=('gvp_wm', 'inverse_dynamics'),
                     corruptions=('frame_drop',), seeds=(10000,), max_time_s=1.0, workers=2)
    result = run_eval(cfg, tmp_path, progress=False)
    reference = load_results(tiny)['episodes']
    keys = ('method', 'corruption', 'seed', 'success', 'final_distance_m', 'replans',
            'rejected_plans', 'mean_alignment', 'mean_dynamics_residual', 'duration_s')
    for got, want in zip(result['episodes'], reference):
        assert _same({k: got[k] for k in keys}, {k: want[k] for k in keys})


def test_wilson_interval():
    lo, hi = wilson_interval(0, 1)
    assert lo == 0 and hi == pytest.approx(0.7935, abs=1e-4)
    lo, hi = wilson_interval(40, 50)
    assert (lo, hi) == pytest.approx((0.6696, 0.8876), abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_residual_gate():
    base = ExecutorConfig()
    assert executor_config_for('gvp_wm', base, 'auto') is base
    assert executor_config_for('collocation', base, 'auto') is base
    for method in ('inverse_dynamics', 'actions_only', 'mpc_cem'):
        cfg = executor_config_for(method, base, 'auto')
        assert cfg.max_dynamics_residual == GATE_OFF_RESIDUAL
    assert executor_config_for('inverse_dynamics', base, 'on') is base
    assert executor_config_for('gvp_wm', base, 'off').max_dynamics_residual == GATE_OFF_RESIDUAL


def test_seeds_and_arguments(capsys):
    assert parse_seeds('1000-1003,1010') == (1000, 1001, 1002, 1003, 1010)
    with pytest.raises(VidplanError, match='--seeds'):
        parse_seeds('a-b')
    assert cli.main(['eval', '--task', 'franka/reach', '--seeds', '4399', '--out', '/nonexistent',
                     '--no-progress']) == 2
    assert 'training' in capsys.readouterr().err
    assert cli.main(['eval', '--task', 'franka/reach', '--methods', 'magic', '--out', 'x']) == 2
    assert cli.main(['eval', '--task', 'franka/reach', '--drop-fraction', '2', '--out',
                     'x']) == 2
    assert 'drop-fraction' in capsys.readouterr().err
    assert cli.main(['eval', '--task', 'franka/reach', '--step-gain', '-1', '--out', 'x']) == 2
    assert '--step-gain' in capsys.readouterr().err


def test_diagnosis_run_has_expert_plans_the_executor_ceiling_and_real_latency(tmp_path):
    """`--plan-source learned,expert --executor-only --latency real`: one row per (method,
    plan source) plus the expert's chunks, and the stage table names the limiting stage."""
    out = tmp_path / 'diag'
    assert cli.main(['eval', '--task', 'franka/reach', '--methods', 'inverse_dynamics',
                     '--plan-source', 'learned,expert', '--executor-only', '--latency', 'real',
                     '--step-gain', '1.25', '--seeds', '10000', '--max-time-s', '4',
                     '--no-progress', '--out', str(out)]) == 0
    result = load_results(out)
    assert result['config']['step_gain'] == 1.25
    rows = {(r['method'], r['plan_source']): r for r in result['summary']}
    assert set(rows) == {('inverse_dynamics', 'learned'), ('inverse_dynamics', 'expert'),
                         ('expert_executor', 'expert')}
    # the expert's own chunks through the executor: the loop's ceiling reaches the target
    assert rows[('expert_executor', 'expert')]['successes'] == 1
    real = [e for e in result['episodes'] if e['method'] == 'inverse_dynamics']
    assert all(e['replans'] >= 1 for e in real)
    md = (out / 'results.md').read_text()
    assert '## Which stage limits it' in md and 'Latency: real' in md
    assert '| inverse_dynamics | 100% |' in md and 'grounded / expert step' in md
    expert_row = rows[('inverse_dynamics', 'expert')]
    assert 0.0 < expert_row['expert_step_gain_p50'] < 3.0      # it moves the expert's way
    assert 0.0 < expert_row['expert_plan_error_rad'] < 1.0
    assert 'expert_step_gain_p50' not in rows[('inverse_dynamics', 'learned')]
    # the planner's offline share, from the model card, beside the closed-loop stages
    card = json.loads((model_dir_for('franka_reach') / 'config.json').read_text())
    want = card['metrics_heldout']['plan_action_cosine']
    assert result['planner_offline']['plan_action_cosine'] == want
    assert f'recovers the recorded (executed) action with cosine {want:.3f}' in md


def test_fixed_latency_lets_the_sim_run_during_the_replan():
    from vidplan_ros.eval.closed_loop import EpisodeConfig
    frozen = EpisodeConfig(max_time_s=1.0)
    fixed = EpisodeConfig(max_time_s=1.0, latency='fixed', latency_fixed_s=0.05)
    real = EpisodeConfig(max_time_s=1.0, latency='real')
    t = {'encode': 0.01, 'imagine': 0.02, 'ground': 0.04}
    assert frozen.charge_s(t) == 0.0 and fixed.charge_s(t) == 0.05
    assert real.charge_s(t) == pytest.approx(0.07)
    with pytest.raises(VidplanError, match='latency'):
        EpisodeConfig(latency='sometimes')


def test_methods_all_runs_policy_only_where_the_model_set_has_the_head():
    from vidplan_ros.eval.evaluate import _without_unavailable
    from vidplan_ros.core.baselines import METHODS
    reach = EvalConfig(task='franka/reach', methods=METHODS, seeds=(10000,))
    push = EvalConfig(task='franka/push', methods=METHODS, seeds=(10000,))
    assert 'policy' not in _without_unavailable(reach).methods
    assert _without_unavailable(reach).methods == tuple(m for m in METHODS if m != 'policy')
    assert _without_unavailable(push).methods == METHODS
