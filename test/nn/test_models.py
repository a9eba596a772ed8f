"""Models: shapes, learning on a tiny config, determinism, checkpoints, a tiny end-to-end train."""

import json
import shutil

import numpy as np
import pytest
import torch

from vidplan_ros.core.errors import ConfigValueError
from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.data.bags import BagWriter
from vidplan_ros.data.dataset import DatasetConfig
from vidplan_ros.nn.checkpoint import load_checkpoint, save_checkpoint
from vidplan_ros.nn.metrics import evaluate_windows
from vidplan_ros.nn.model_config import (AutoencoderConfig, InverseDynamicsConfig, ModelConfig,
                                         PlannerConfig, TrainConfig, WorldModelConfig)
from vidplan_ros.nn.model_set import build_models, load_model_set
from vidplan_ros.nn.train import train, train_planner
from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.dds_msgs import dds_type

NAMES = load_robot_spec('franka_fr3').joint_names
CMD = '/fr3_arm_controller/joint_trajectory'
S = 16


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a busy machine: one thread is much faster than contended threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(data_dir: str = '', cache: str = '', **train_kw) -> ModelConfig:
    tk = dict(ae_steps=6, ae_batch=4, dyn_steps=6, dyn_batch=4, wm_rollout=2,
              checkpoint_every=3, threads=1, heldout_windows=2, heldout_fraction=0.34)
    tk.update(train_kw)
    return ModelConfig(
        image_size=S, data=DatasetConfig(data_dir=data_dir, image_size=S, cache_dir=cache),
        autoencoder=AutoencoderConfig(channels=(8, 8), latent_channels=4),
        planner=PlannerConfig(horizon=3, d_model=32, layers=1, heads=2, sample_steps=2),
        world_model=WorldModelConfig(hidden=8, blocks=1),
        inverse_dynamics=InverseDynamicsConfig(hidden=8), train=TrainConfig(**tk))


def batch(cfg: ModelConfig, b: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    v, c, h, w = cfg.latent_shape
    return (torch.rand(b, v, 3, S, S, generator=g), torch.randn(b, v, c, h, w, generator=g),
            torch.randn(b, cfg.action_dim, generator=g),
            torch.randn(b, cfg.planner.horizon, v, c, h, w, generator=g))


def test_shapes_and_sampling_is_deterministic_given_noise():
    cfg = tiny()
    torch.manual_seed(0)
    m = build_models(cfg)
    img, z, q, noise = batch(cfg)
    assert cfg.latent_shape == (2, 4, 4, 4)
    assert m['autoencoder'].encode(img).shape == (4, 2, 4, 4, 4)
    assert m['autoencoder'].decode(z).shape == img.shape
    plan = m['planner'](z, q, noise)
    assert plan.shape == (4, 3, 2, 4, 4, 4)
    assert torch.equal(plan, m['planner'](z, q, noise))
    zn, qn = m['world_model'](z, q, q)
    assert zn.shape == z.shape and qn.shape == q.shape
    zr, qr = m['world_model'].rollout(z, q, torch.randn(4, 3, 7))
    assert zr.shape == (4, 3, 2, 4, 4, 4) and qr.shape == (4, 3, 7)
    assert m['inverse_dynamics'](z, zn, q).shape == (4, 7)


def test_world_model_is_differentiable_in_actions():
    cfg = tiny()
    torch.manual_seed(0)
    wm = build_models(cfg)['world_model']
    for p in wm.parameters():           # zero-initialised heads: perturb so grads are nonzero
        p.data.add_(0.05 * torch.randn_like(p))
    _, z, q, _ = batch(cfg)
    a = torch.zeros(4, 3, 7, requires_grad=True)
    zr, qr = wm.rollout(z, q, a)
    (zr.square().mean() + qr.square().mean()).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_models_learn_a_fixed_batch():
    cfg = tiny()
    torch.manual_seed(0)
    m = build_models(cfg)
    img, z, q, noise = batch(cfg)
    fut = z[:, None] + 0.5 * torch.randn_like(noise)
    z1 = z + 0.3
    a = torch.randn(4, 7)
    losses = {
        'autoencoder': lambda: ((m['autoencoder'](img) - img) ** 2).mean(),
        'planner': lambda: m['planner'].loss(z, q, fut, noise, torch.full((4,), 0.5)),
        'world_model': lambda: ((m['world_model'](z, q, a)[0] - z1) ** 2).mean(),
        'inverse_dynamics': lambda: ((m['inverse_dynamics'](z, z1, q) - a) ** 2).mean(),
    }
    for name, fn in losses.items():
        opt = torch.optim.Adam(m[name].parameters(), lr=3e-3)
        first = fn().item()
        for _ in range(25):
            loss = fn()
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert fn().item() < 0.8 * first, name


def test_checkpoint_round_trip(tmp_path):
    cfg = tiny()
    m = build_models(cfg)['planner']
    opt = torch.optim.Adam(m.parameters())
    g = torch.Generator().manual_seed(3)
    save_checkpoint(tmp_path / 'c' / 'ck.pt', {'m': m.state_dict(), 'o': opt.state_dict(),
                                               'g': g.get_state(), 'step': 7})
    ck = load_checkpoint(tmp_path / 'c' / 'ck.pt')
    assert ck['step'] == 7 and load_checkpoint(tmp_path / 'none.pt') is None
    m2 = build_models(cfg)['planner']
    m2.load_state_dict(ck['m'])
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                  m2.state_dict().values()))
    g2 = torch.Generator()
    g2.set_state(ck['g'])
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=g2))


def write_bags(root, episodes: int = 3, frames: int = 14, detour: tuple[int, ...] = (),
               state: bool = False) -> None:
    """Episodes moving at a constant random joint velocity; with `detour`, the expert's own
    chunk is recorded too (/vidplan/expert_trajectory), 0.3 rad off the executed one at those
    frames; with `state`, a task state (/vidplan/task_state: the slope of joint 1, the time)."""
    rng = np.random.default_rng(0)
    for e in range(episodes):
        slope = rng.uniform(-0.5, 0.5, 7)
        with BagWriter(root / f'ep_{e}') as bag:
            for k in range(frames):
                t_ns, t = k * 100_000_000, k * 0.1
                q = slope * t
                img = np.zeros((S, S, 3), np.uint8)
                img[:, : (k % S) + 1] = 200
                for cam in ('front', 'wrist'):
                    bag.write(f'/cameras/{cam}/image_raw', t_ns,
                              cv.image_msg(dds_type, t_ns, cam, img))
                bag.write('/joint_states', t_ns, cv.joint_state_msg(dds_type, t_ns, NAMES, q))
                if state:
                    bag.write('/vidplan/task_state', t_ns, cv.named_values_msg(
                        dds_type, ('slope', 'time_s'), [slope[0], t]))
                if k < frames - 1:
                    ts = np.array([0.1, 0.2, 0.3])
                    pos = np.stack([slope * (t + s) for s in ts])
                    bag.write(CMD, t_ns, cv.joint_trajectory_msg(dds_type, t_ns, NAMES, ts, pos))
                    if detour:
                        bag.write('/vidplan/expert_trajectory', t_ns, cv.joint_trajectory_msg(
                            dds_type, t_ns, NAMES, ts, pos - 0.3 * (k in detour)))


def weights(path) -> dict:
    return {k: torch.load(path / f'{k}.pt') for k in
            ('autoencoder', 'planner', 'world_model', 'inverse_dynamics')}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k][n], b[k][n]) for k in a for n in a[k])


def test_tiny_training_end_to_end_deterministic_and_resumable(tmp_path):
    write_bags(tmp_path / 'bags')
    # held-out evaluations every 2 steps: a resumed run must remember the curve and best
    # weights from before the stop
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), eval_every=2, patience=0)
    info = train(cfg, tmp_path / 'a', tmp_path / 'wa', progress=False, log=lambda s: None)
    assert info['training']['autoencoder_steps'] == 6
    for name in ('README.md', 'config.json', 'norm_stats.json', 'heldout.npz'):
        assert (tmp_path / 'a' / name).exists()
    # same seed -> identical weights; stopped after 4 steps and resumed -> identical too
    train(cfg, tmp_path / 'b', tmp_path / 'wb', progress=False, log=lambda s: None)
    assert same(weights(tmp_path / 'a'), weights(tmp_path / 'b'))
    for stop, stage in ((4, 'ae_step'), (8, 'dyn_step')):
        out, work = tmp_path / f'c{stop}', tmp_path / f'wc{stop}'
        assert train(cfg, out, work, progress=False, log=lambda s: None,
                     stop_after=stop) == {}
        assert load_checkpoint(work / 'checkpoint.pt')[stage] == stop - 6 * (stop > 6)
        resumed = train(cfg, out, work, progress=False, log=lambda s: None)
        assert same(weights(tmp_path / 'a'), weights(out)), stop
        assert resumed['training']['curves'] == info['training']['curves'], stop
    # the written model set loads and reproduces its own heldout.npz metrics
    ms = load_model_set(tmp_path / 'a')
    z = np.load(tmp_path / 'a' / 'heldout.npz')
    got = evaluate_windows(ms, z['images'], z['q'], z['action'], seed=cfg.train.seed)
    want = json.loads((tmp_path / 'a' / 'config.json').read_text())['metrics_heldout_npz']
    assert got['recon_psnr_db'] == pytest.approx(want['recon_psnr_db'], abs=1e-3)
    np.testing.assert_allclose(got['planner_cosine'], want['planner_cosine'], atol=1e-4)


def test_tiny_training_loss_goes_down(tmp_path):
    write_bags(tmp_path / 'bags')
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), ae_steps=60, dyn_steps=60,
               checkpoint_every=100)
    t = train(cfg, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    t = t['training']
    first, last = t['autoencoder_loss_first_last']
    assert last < first
    for first, last in t['dynamics_loss_first_last']:
        assert last < first


def test_planner_predicts_scaled_residual_from_current_latent():
    """Zero velocity (fresh, zero-initialised head) and zero noise plan "no change"; the
    residual scale sets how far unit noise moves the plan from z0."""
    cfg = tiny()
    torch.manual_seed(0)
    p = build_models(cfg)['planner']
    _, z, q, noise = batch(cfg)
    assert torch.allclose(p(z, q, torch.zeros_like(noise)), z[:, None].expand_as(noise))
    fut = z[:, None] + 0.1 * noise
    p.set_residual_scale(z, fut)
    assert torch.allclose(p.res_scale, 0.1 * noise.pow(2).mean(dim=(0, 4, 5)).sqrt())
    assert torch.allclose(p(z, q, noise), z[:, None] + noise * p.res_scale[..., None, None],
                          atol=1e-6)


def test_only_planner_retrains_the_planner_and_keeps_the_rest(tmp_path):
    write_bags(tmp_path / 'bags')
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'))
    train(cfg, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    before = weights(tmp_path / 'm')
    cfg2 = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), planner_steps=5,
                planner_batch=4, planner_lr=0.003)
    info = train_planner(cfg2, tmp_path / 'm', tmp_path / 'w', progress=False,
                         log=lambda s: None)
    assert info['planner_training']['steps'] == 5
    after = weights(tmp_path / 'm')
    for k in ('autoencoder', 'world_model', 'inverse_dynamics'):
        assert same({k: before[k]}, {k: after[k]}), k
    assert not same({'planner': before['planner']}, {'planner': after['planner']})
    assert '--only planner' in (tmp_path / 'm' / 'README.md').read_text()
    ms = load_model_set(tmp_path / 'm')
    z = np.load(tmp_path / 'm' / 'heldout.npz')
    got = evaluate_windows(ms, z['images'], z['q'], z['action'], seed=cfg.train.seed)
    want = json.loads((tmp_path / 'm' / 'config.json').read_text())['metrics_heldout_npz']
    np.testing.assert_allclose(got['planner_cosine'], want['planner_cosine'], atol=1e-4)
    assert got['inverse_dynamics_rmse_rad'] == pytest.approx(
        want['inverse_dynamics_rmse_rad'], abs=1e-6)


def test_only_planner_resumes_with_its_curve_and_best_weights(tmp_path):
    write_bags(tmp_path / 'bags')
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'))
    train(cfg, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    shutil.copytree(tmp_path / 'm', tmp_path / 'r')
    cfg2 = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), planner_steps=8,
                planner_batch=4, eval_every=2, patience=0, checkpoint_every=100)
    whole = train_planner(cfg2, tmp_path / 'm', tmp_path / 'wp', progress=False,
                          log=lambda s: None)
    assert train_planner(cfg2, tmp_path / 'r', tmp_path / 'wr', progress=False,
                         log=lambda s: None, stop_after=4) == {}
    resumed = train_planner(cfg2, tmp_path / 'r', tmp_path / 'wr', progress=False,
                            log=lambda s: None)
    name = 'planner (--only planner)'
    assert [p['step'] for p in resumed['training']['curves'][name]['points']] == [2, 4, 6, 8]
    assert resumed['training']['curves'][name] == whole['training']['curves'][name]
    assert same(weights(tmp_path / 'm'), weights(tmp_path / 'r'))


def test_only_planner_on_more_data_holds_the_same_episodes_out(tmp_path):
    """A data-scaling point: the planner retrains on a larger set of episodes; the model set's
    held-out episodes stay held out (by name), the rest train, the held-out flow curve is
    kept; data without any of them is refused."""
    write_bags(tmp_path / 'bags')
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'))
    train(cfg, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    held = json.loads((tmp_path / 'm' / 'config.json').read_text())['dataset'][
        'heldout_episodes']
    assert held == ['ep_2']
    write_bags(tmp_path / 'more', episodes=5)          # ep_0..2 as before, plus ep_3, ep_4
    cfg2 = tiny(str(tmp_path / 'more'), str(tmp_path / 'cache2'), planner_steps=6,
                planner_batch=4, eval_every=2, patience=0)
    info = train_planner(cfg2, tmp_path / 'm', tmp_path / 'w2', progress=False,
                         log=lambda s: None)
    pt = info['planner_training']
    assert (pt['episodes'], pt['train_episodes'], pt['heldout_episodes']) == (5, 4, 1)
    curve = info['training']['curves']['planner (--only planner)']
    assert [p['step'] for p in curve['points']] == [2, 4, 6]
    assert '4 training episodes from' in (tmp_path / 'm' / 'README.md').read_text()
    assert pt['windows'] == 48 and pt['max_perturbation_rad'] == 0.0   # 4 eps x 2 x 6
    # the planner leaves out the windows whose commands were pushed off the expert's
    write_bags(tmp_path / 'detour', episodes=5, detour=(4,))
    cfg3 = tiny(str(tmp_path / 'detour'), str(tmp_path / 'cache3'), planner_steps=2,
                planner_batch=4, planner_max_perturbation_rad=0.1)
    pt = train_planner(cfg3, tmp_path / 'm', tmp_path / 'w4', progress=False,
                       log=lambda s: None)['planner_training']
    # frame 4 (10 Hz) is grid frame 2 of the offset-0 sequences: windows starting at 0-2 go
    assert pt['windows'] == 48 - 4 * 3
    # the held-out episode missing from the data: a clear error, nothing rewritten
    shutil.rmtree(tmp_path / 'more' / 'ep_2')
    with pytest.raises(ValueError, match=r'held-out episodes .*\(ep_2'):
        train_planner(cfg2, tmp_path / 'm', tmp_path / 'w3', progress=False,
                      log=lambda s: None)


class _Encode(torch.nn.Module):
    def __init__(self, ae: torch.nn.Module) -> None:
        super().__init__()
        self.ae = ae

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.ae.encode(images)


class _Decode(_Encode):
    def forward(self, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.ae.decode(z)


def test_models_export_with_a_symbolic_batch_and_no_data_dependent_control_flow():
    """torch.export with a dynamic batch dimension traces every network to one static graph
    (a Python branch on tensor values would fail here: what ONNX / TensorRT need); the exported
    program, run at another batch size on other values, equals eager mode. (Example inputs
    must be distinct tensors: export treats one tensor passed twice as one input.)"""
    cfg = tiny()
    torch.manual_seed(0)
    m = build_models(cfg)
    with torch.no_grad():        # wake the zero-initialised output heads up
        for p in (p for mod in m.values() for p in mod.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    for mod in m.values():
        mod.eval()
    img, z, q, noise = batch(cfg, b=2)
    img3, z3, q3, noise3 = batch(cfg, b=3, seed=5)
    cases = {
        'encode': (_Encode(m['autoencoder']), (img,), (img3,)),
        'decode': (_Decode(m['autoencoder']), (z,), (z3,)),
        'planner': (m['planner'], (z, q, noise), (z3, q3, noise3)),
        'world_model': (m['world_model'], (z, q, 0.1 * q), (z3, q3, -q3)),
        'inverse_dynamics': (m['inverse_dynamics'], (z, 0.5 * z, q), (z3, -z3, q3)),
    }
    bdim = torch.export.Dim('batch', min=1, max=64)
    for name, (mod, args, other) in cases.items():
        ep = torch.export.export(mod, args, dynamic_shapes=tuple({0: bdim} for _ in args),
                                 strict=False)
        with torch.no_grad():
            want, got = mod(*other), ep.module()(*other)
        want = want if isinstance(want, tuple) else (want,)
        got = got if isinstance(got, tuple) else (got,)
        for w, g in zip(want, got):
            assert g.shape[0] == 3, name
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6, msg=name)


def test_planner_first_frame_estimate_is_exact_at_the_end_of_the_flow():
    """loss_and_first: at tau = 1 x_tau is the target, so the first-frame estimate is the true
    first future frame whatever the net says; at tau = 0 with the zero-initialised head it is
    z0 plus the scaled noise."""
    cfg = tiny()
    torch.manual_seed(0)
    p = build_models(cfg)['planner']
    _, z, q, noise = batch(cfg)
    fut = z[:, None] + 0.3 * torch.randn_like(noise)
    p.set_residual_scale(z, fut)
    b = len(z)
    _, first = p.loss_and_first(z, q, fut, noise, torch.ones(b))
    assert torch.allclose(first, fut[:, 0], atol=1e-5)
    loss, first0 = p.loss_and_first(z, q, fut, noise, torch.zeros(b))
    assert torch.allclose(first0, z + noise[:, 0] * p.res_scale[0, :, :, None, None], atol=1e-5)
    assert loss == p.loss(z, q, fut, noise, torch.zeros(b))


def test_planner_self_attention_reaches_across_the_grid():
    """The attention stage: cross-attention to the [task, q, time] tokens keeps each grid cell
    to itself; with `self_attention` a cell also depends on the far corner of the grid (where
    the object may be), which the conv blocks reach only through their depth."""
    def far_effect(self_attention: bool) -> float:
        cfg = ModelConfig(image_size=64, autoencoder=AutoencoderConfig(channels=(8, 8),
                                                                     latent_channels=2),
                          planner=PlannerConfig(horizon=2, d_model=16, layers=1, heads=2,
                                                self_attention=self_attention))
        assert cfg.latent_shape[2:] == (16, 16)
        torch.manual_seed(0)
        p = build_models(cfg)['planner']
        x = torch.randn(1, 16, 16, 16)
        ctx = torch.randn(1, 3, 16)
        x2 = x.clone()
        x2[0, :, 15, 15] = 3.0 * torch.randn(16)    # a new feature vector in the far corner
        with torch.no_grad():
            d = p._attend(x2, ctx) - p._attend(x, ctx)
        return float(d[..., 0, 0].abs().max())

    assert far_effect(False) == 0.0
    assert far_effect(True) > 1e-3


def test_only_planner_action_weight_adds_the_inverse_dynamics_loss(tmp_path):
    """planner_action_weight > 0 changes what the planner learns (same seed, same data)."""
    write_bags(tmp_path / 'bags')
    cfg = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'))
    train(cfg, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    shutil.copytree(tmp_path / 'm', tmp_path / 'a')
    got = {}
    for name, weight in (('m', 0.0), ('a', 2.0)):
        c = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), planner_steps=4,
                 planner_batch=4, planner_action_weight=weight)
        train_planner(c, tmp_path / name, tmp_path / f'w{name}', progress=False,
                      log=lambda s: None)
        got[name] = weights(tmp_path / name)
    assert not same({'planner': got['m']['planner']}, {'planner': got['a']['planner']})
    assert same({'inverse_dynamics': got['m']['inverse_dynamics']},
                {'inverse_dynamics': got['a']['inverse_dynamics']})
    with pytest.raises(ValueError, match='planner_action_weight'):
        TrainConfig(planner_action_weight=-1.0)


def test_planner_global_state_token_conditions_the_velocity():
    """`global_state`: an MLP over the whole current latent joins the conditioning; zeroing
    its output layer must change the velocity (it is wired in), and without the option the
    planner has no such module."""
    assert build_models(tiny())['planner'].state_in is None
    from dataclasses import replace
    cfg = tiny()
    cfg = replace(cfg, planner=replace(cfg.planner, global_state=True))
    torch.manual_seed(0)
    p = build_models(cfg)['planner']
    for m in p.modules():                  # undo the zero inits so the output carries signal
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.2)
    _, z, q, noise = batch(cfg)
    x, tau = noise.flatten(1, 3), torch.full((len(z),), 0.5)
    with torch.no_grad():
        v = p.velocity(x, tau, z, q)
        p.state_in[-1].weight.zero_()
        p.state_in[-1].bias.zero_()
        v0 = p.velocity(x, tau, z, q)
    assert float((v - v0).abs().max()) > 1e-3


def test_planner_action_prior_is_trained_on_the_actions_and_conditions_the_plan(tmp_path):
    """`action_prior`: the loss needs the windows' actions (teacher forcing); the sampled plan
    follows the head's actions, so a different head gives a different plan; a tiny joint and
    planner-only training run with it."""
    from dataclasses import replace
    cfg = tiny()
    cfg = replace(cfg, planner=replace(cfg.planner, action_prior=True))
    torch.manual_seed(0)
    p = build_models(cfg)['planner']
    for m in p.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.2)
    _, z, q, noise = batch(cfg)
    fut = z[:, None] + 0.3 * torch.randn_like(noise)
    tau = torch.full((len(z),), 0.5)
    with pytest.raises(ValueError, match='action_prior'):
        p.loss(z, q, fut, noise, tau)
    acts = torch.randn(len(z), cfg.planner.horizon, cfg.action_dim)
    mask = torch.ones(len(z), cfg.planner.horizon)
    # the head's error is part of the loss: a head that predicts the actions lowers it
    with torch.no_grad():
        before = p.loss(z, q, fut, noise, tau, acts, mask)
        head_err = float(((p.prior(z, q) - acts) ** 2).mean())
        x = noise.flatten(1, 3)
        v1 = p.velocity(x, tau, z, q, acts)
        v2 = p.velocity(x, tau, z, q, -acts)
        plan = p(z, q, noise)
        p.prior.head[-1].bias.add_(1.0)
        assert not torch.allclose(p(z, q, noise), plan)       # the plan follows the head
    assert float((v1 - v2).abs().max()) > 1e-3
    assert float(before) > head_err > 0
    # with separate targets (the expert's labels) the head learns those, while the flow is
    # still conditioned on the executed actions: same flow term, the head's error against
    # the targets instead
    labels = torch.randn_like(acts)
    with torch.no_grad():
        with_labels = p.loss(z, q, fut, noise, tau, acts, mask, labels)
        label_err = float(((p.prior(z, q) - labels) ** 2).mean())
        acts_err = float(((p.prior(z, q) - acts) ** 2).mean())
        flow_only = float(p.loss(z, q, fut, noise, tau, acts, mask)) - acts_err
    assert float(with_labels) == pytest.approx(flow_only + label_err, rel=1e-5)
    write_bags(tmp_path / 'bags')
    c = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'))
    c = replace(c, planner=replace(c.planner, action_prior=True))
    train(c, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    c2 = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), planner_steps=4, planner_batch=4)
    c2 = replace(c2, planner=replace(c2.planner, action_prior=True))
    info = train_planner(c2, tmp_path / 'm', tmp_path / 'wp', progress=False,
                         log=lambda s: None)
    assert info['planner_training']['steps'] == 4
    assert load_model_set(tmp_path / 'm').planner.prior is not None


def test_planner_state_head_estimates_the_task_state_and_its_policy_reads_only_that(tmp_path):
    """`state_dim`: the head estimates the task's state from the latent (trained on the
    recorded labels, normalised by their training statistics) and its actions are a function
    of (q, that estimate) alone; the loss needs the labels; a tiny joint and planner-only
    training run with it, and the data must record as many values as the head estimates."""
    from dataclasses import replace
    with pytest.raises(ConfigValueError, match='state_dim'):
        PlannerConfig(state_dim=2)
    cfg = tiny()
    cfg = replace(cfg, planner=replace(cfg.planner, action_prior=True, state_dim=2))
    torch.manual_seed(0)
    p = build_models(cfg)['planner']
    _, z, q, noise = batch(cfg, b=16)
    fut = z[:, None] + 0.3 * torch.randn_like(noise)
    tau = torch.full((len(z),), 0.5)
    acts = torch.randn(len(z), cfg.planner.horizon, cfg.action_dim)
    mask = torch.ones(len(z), cfg.planner.horizon)
    with pytest.raises(ValueError, match='task-state labels'):
        p.loss(z, q, fut, noise, tau, acts, mask)
    # labels: a linear read-out of the latent, in metres around 0.5
    state = 0.5 + 0.1 * torch.stack([z[:, 0, 0].mean((1, 2)), z[:, -1, 1].mean((1, 2))], 1)
    p.set_state_scale(state)
    assert torch.allclose(p.prior.state_mean, state.mean(0))
    with torch.no_grad():
        assert torch.allclose(p.prior(z, q), p.prior.policy(q, p.prior.estimate(z)))
    state_n = (state - p.prior.state_mean) / p.prior.state_std

    def state_err() -> float:
        with torch.no_grad():
            return float(((p.prior.estimate(z) - state_n) ** 2).mean())
    before = state_err()
    opt = torch.optim.Adam(p.parameters(), 3e-3)
    for _ in range(150):
        loss = p.loss(z, q, fut, noise, tau, acts, mask, None, state)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert state_err() < 0.2 * before
    # a label missing (NaN) adds nothing for that frame
    partial = state.clone()
    partial[0] = float('nan')
    with torch.no_grad():
        assert torch.isfinite(p.loss(z, q, fut, noise, tau, acts, mask, None, partial))
    write_bags(tmp_path / 'bags', state=True)
    c = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'))
    c = replace(c, planner=replace(c.planner, action_prior=True, state_dim=2))
    train(c, tmp_path / 'm', tmp_path / 'w', progress=False, log=lambda s: None)
    head = load_model_set(tmp_path / 'm').planner.prior
    assert head.state_dim == 2 and 0 < float(head.state_mean[1]) < 1.4   # the mean time
    c2 = tiny(str(tmp_path / 'bags'), str(tmp_path / 'cache'), planner_steps=4, planner_batch=4)
    c2 = replace(c2, planner=replace(c2.planner, action_prior=True, state_dim=2))
    assert train_planner(c2, tmp_path / 'm', tmp_path / 'wp', progress=False,
                         log=lambda s: None)['planner_training']['steps'] == 4
    c3 = replace(c2, planner=replace(c2.planner, state_dim=3))
    with pytest.raises(ValueError, match='records 2 task-state values'):
        train_planner(c3, tmp_path / 'm', tmp_path / 'wp3', progress=False, log=lambda s: None)


def test_residual_scale_reads_a_seeded_draw_of_many_windows():
    """520k push windows would take 19 GB at once: the residual scale reads a seeded draw."""
    from vidplan_ros.nn.train import _future_pairs
    z_all = torch.randn(50, 2, 3, 2, 2)
    win = torch.arange(40)[:, None] + torch.arange(4)[None]
    z0, fut = _future_pairs(z_all, win, torch.device('cpu'), max_windows=10)
    assert z0.shape == (10, 2, 3, 2, 2) and fut.shape == (10, 3, 2, 3, 2, 2)
    again = _future_pairs(z_all, win, torch.device('cpu'), max_windows=10)[0]
    assert torch.equal(z0, again)
    assert _future_pairs(z_all, win, torch.device('cpu'))[0].shape[0] == 40


def test_state_head_policy_width_and_depth_are_configurable():
    from dataclasses import replace
    with pytest.raises(ConfigValueError, match='policy_layers'):
        PlannerConfig(policy_layers=0)
    with pytest.raises(ConfigValueError, match='policy_width'):
        PlannerConfig(policy_width=-1)
    cfg = tiny()
    cfg = replace(cfg, planner=replace(cfg.planner, action_prior=True, state_dim=2,
                                       policy_width=48, policy_layers=3))
    head = build_models(cfg)['planner'].prior
    linear = [m for m in head.head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [48, 48, 48, cfg.planner.horizon * 7]
    _, z, q, _ = batch(cfg)
    assert head(z, q).shape == (len(z), cfg.planner.horizon, 7)
