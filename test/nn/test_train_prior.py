"""`vidplan train --only prior`: the planner's action-prior head retrained alone."""
import json
import shutil
from dataclasses import replace

import pytest
import torch

from test.nn.test_models import same, tiny, weights, write_bags
from vidplan_ros.nn.model_set import load_model_set
from vidplan_ros.nn.train import main as train_main
from vidplan_ros.nn.train import train
from vidplan_ros.nn.train import PRIOR_TRACK as TRACK
from vidplan_ros.nn.train_prior import train_prior


def _with_head(cfg):
    return replace(cfg, planner=replace(cfg.planner, action_prior=True, state_dim=2))


def _split(planner_state: dict) -> tuple[dict, dict]:
    head = {k: v for k, v in planner_state.items() if k.startswith('prior.')}
    return head, {k: v for k, v in planner_state.items() if not k.startswith('prior.')}


def test_only_prior_trains_the_head_alone_and_resumes(tmp_path):
    write_bags(tmp_path / 'bags', state=True)
    base = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'))
    train(_with_head(base), tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    shutil.copytree(tmp_path / 'm', tmp_path / 'r')
    before = weights(tmp_path / 'm')
    # the yaml's model settings may differ (the saved set's are kept); data and train are cfg's
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), prior_steps=8, prior_batch=4,
               prior_lr=0.003, eval_every=2, patience=0, checkpoint_every=100)
    logs: list[str] = []
    info = train_prior(cfg, tmp_path / 'm', tmp_path / 'wp', progress=False, log=logs.append)
    after = weights(tmp_path / 'm')
    for k in ('autoencoder', 'world_model', 'inverse_dynamics'):
        assert same({k: before[k]}, {k: after[k]}), k
    head_b, flow_b = _split(before['planner'])
    head_a, flow_a = _split(after['planner'])
    assert same({'p': flow_b}, {'p': flow_a})              # the flow is frozen
    assert not same({'p': head_b}, {'p': head_a})          # the head learnt
    assert torch.equal(head_a['prior.state_mean'], head_b['prior.state_mean'])
    pr = info['prior_training']
    assert (pr['steps'], pr['batch'], pr['train_episodes'], pr['heldout_episodes']) == (
        8, 4, 2, 1)
    assert set(pr['state_rmse']) == {'slope', 'time_s'}
    assert 'planner_training' not in info and 'state RMSE' in logs[-1]
    curve = info['training']['curves'][TRACK]
    assert [p['step'] for p in curve['points']] == [2, 4, 6, 8]
    saved = json.loads((tmp_path / 'm' / 'config.json').read_text())
    assert saved['prior_training'] == pr and saved['params']['planner.state_dim'] == 2
    assert '--only prior' in (tmp_path / 'm' / 'README.md').read_text()
    assert load_model_set(tmp_path / 'm').planner.prior.state_dim == 2
    # stopped and resumed: the same curve and weights as the whole run
    assert train_prior(cfg, tmp_path / 'r', tmp_path / 'wr', progress=False,
                       log=lambda s: None, stop_after=3) == {}
    resumed = train_prior(cfg, tmp_path / 'r', tmp_path / 'wr', progress=False,
                          log=lambda s: None)
    assert resumed['training']['curves'][TRACK] == curve
    assert same(weights(tmp_path / 'm'), weights(tmp_path / 'r'))


def test_only_prior_needs_a_head(tmp_path, capsys):
    write_bags(tmp_path / 'bags')
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), prior_steps=2, prior_batch=4)
    train(cfg, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    with pytest.raises(ValueError, match='no action-prior head'):
        train_prior(cfg, tmp_path / 'm', tmp_path / 'wp', progress=False, log=lambda s: None)
    # the CLI reaches the stage: the same clear error
    (tmp_path / 'cfg.yaml').write_text('/**:\n  ros__parameters:\n    name: tiny\n')
    with pytest.raises(ValueError, match='no action-prior head'):
        train_main(['--config', str(tmp_path / 'cfg.yaml'), '--data', str(tmp_path / 'bags'),
                    '--out', str(tmp_path / 'm'), '--only', 'prior', '--no-progress',
                    '--work-dir', str(tmp_path / 'wc')])


def test_only_prior_with_another_policy_shape_starts_that_mlp_afresh(tmp_path):
    write_bags(tmp_path / 'bags', state=True)
    base = _with_head(tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache')))
    train(base, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    before = weights(tmp_path / 'm')['planner']
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), prior_steps=2, prior_batch=4,
               prior_lr=1e-9)    # (almost) no step: what the stage starts from
    cfg = replace(cfg, planner=replace(cfg.planner, policy_width=16, policy_layers=3))
    logs: list[str] = []
    info = train_prior(cfg, tmp_path / 'm', tmp_path / 'wp', progress=False, log=logs.append)
    assert any('starts afresh' in s for s in logs)
    assert (info and json.loads((tmp_path / 'm' / 'config.json').read_text())['params'][
        'planner.policy_width'] == 16)
    head = load_model_set(tmp_path / 'm').planner.prior
    assert [m.out_features for m in head.head if isinstance(m, torch.nn.Linear)] == [
        16, 16, 16, base.planner.horizon * 7]
    after = weights(tmp_path / 'm')['planner']
    for k in ('prior.state.0.weight', 'prior.conv.0.weight'):     # the estimator is kept
        torch.testing.assert_close(after[k], before[k], atol=1e-6, rtol=0)
