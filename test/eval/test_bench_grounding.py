"""`vidplan bench grounding` on a real model set, tiny."""

from vidplan_ros.eval.bench_grounding import bench_model, to_markdown


def test_bench_model_times_each_method_on_real_problems():
    r = bench_model('franka_reach', ['gvp_wm', 'inverse_dynamics'], [1000], ticks=2, repeats=1,
                    passes=2)
    assert r['task'] == 'franka/reach' and r['problems'] == 2 and r['horizon'] == 8
    for m in ('gvp_wm', 'inverse_dynamics'):
        s = r['methods'][m]
        assert len(s['ms']) == 2 and 0 < s['p50_ms'] <= s['p95_ms']
        assert s['ms'] == [min(a, b) for a, b in zip(*s['ms_per_pass'])]
        assert -1 <= s['mean_rollout_alignment'] <= 1 and s['mean_dynamics_residual'] >= 0
        assert s['ratio_to_mpc_cem_p50'] is None          # no mpc_cem in this run
    assert r['methods']['inverse_dynamics']['mean_dynamics_residual'] > \
        r['methods']['gvp_wm']['mean_dynamics_residual']  # commits to the plan's latents

    r['methods']['mpc_cem'] = dict(r['methods']['gvp_wm'], p50_ms=1000.0)
    r['methods']['gvp_wm']['ratio_to_mpc_cem_p50'] = r['methods']['gvp_wm']['p50_ms'] / 1000
    md = to_markdown({'models': [r]})
    assert '| gvp_wm |' in md and '| mpc_cem |' in md and 'GVP-WM / MPC-CEM' in md
