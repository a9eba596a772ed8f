"""`vidplan scaling`: points from eval results and their model sets' training data."""

import json

import pytest

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.eval import scaling


def _point(tmp_path, name: str, episodes: int, successes: int, planner_only: bool) -> str:
    model = tmp_path / f'model_{name}'
    model.mkdir()
    info = {'dataset': {'train_episodes': 360}, 'training': {'dynamics_steps': 5000},
            'metrics_heldout': {'planner_cosine': [0.8, 0.7]}}
    if planner_only:
        info['planner_training'] = {'train_episodes': episodes, 'steps': 4000,
                                    'best_step': 3500}
    (model / 'config.json').write_text(json.dumps(info))
    out = tmp_path / f'eval_{name}'
    out.mkdir()
    row = {'method': 'gvp_wm', 'plan_source': 'learned', 'corruption': 'none',
           'episodes': 50, 'successes': successes, 'success_rate': successes / 50,
           'success_ci95': [0.1, 0.9], 'mean_final_distance_m': 0.05}
    (out / 'results.json').write_text(json.dumps({
        'command': f'vidplan eval --model {model}', 'episodes': [],
        'config': {'model': str(model), 'seeds': list(range(20000, 20050)),
                   'task': 'franka/reach'},
        'summary': [row, {**row, 'corruption': 'motion_blur', 'successes': 1}]}))
    return str(out)


def test_points_are_ordered_by_the_episodes_the_planner_trained_on(tmp_path):
    dirs = [_point(tmp_path, 'big', 1440, 40, True), _point(tmp_path, 'base', 0, 25, False),
            _point(tmp_path, 'small', 90, 10, True)]
    points = scaling.scaling_points(dirs)
    # planner retrained alone: its episodes; the whole set: the dataset's
    assert [p['train_episodes'] for p in points] == [90, 360, 1440]
    assert [p['planner_steps'] for p in points] == [3500, 5000, 3500]
    paths = scaling.write_scaling(points, tmp_path / 'out', 'franka/reach')
    md = paths['md'].read_text()
    assert '| 360 | 5000 | 0.700 | gvp_wm (learned plan) | 25/50 = 50% |' in md
    assert 'motion_blur' not in md                     # the curve is the uncorrupted runs
    assert 'same 50 seeds 20000-20049' in md
    assert paths['png'].stat().st_size > 1000


def test_missing_results_or_model_is_a_clear_error(tmp_path):
    with pytest.raises(VidplanError, match='no results.json'):
        scaling.scaling_points([tmp_path])
    d = _point(tmp_path, 'gone', 90, 10, True)
    (tmp_path / 'model_gone' / 'config.json').unlink()
    with pytest.raises(VidplanError, match='no longer there'):
        scaling.scaling_points([d])
