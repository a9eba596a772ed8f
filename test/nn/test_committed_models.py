"""Each committed model set in models/ loads and reproduces its model card's held-out metrics.

The card's `metrics_heldout_npz` (config.json, quoted in README.md) were computed at training
time on the windows stored in `heldout.npz`; recomputing them here must agree within: PSNR
0.05 dB, cosines 2e-3, MSE / RMSE 2 % (+ 1e-4 absolute), which covers CPU BLAS differences.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidplan_ros.nn.metrics import evaluate_windows
from vidplan_ros.nn.model_set import MODEL_FILES, load_model_set

MODELS = Path(__file__).resolve().parents[2] / 'models'
NAMES = ('franka_reach', 'franka_push', 'g1_reach')


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize('name', NAMES)
def test_committed_model_reproduces_its_card(name):
    path = MODELS / name
    if not (path / 'config.json').exists():
        pytest.skip(f'models/{name} is not trained/committed yet')
    size = sum((path / f'{k}.pt').stat().st_size for k in MODEL_FILES)
    # small enough to commit: franka_push with its action-prior head (a 3 x 512 policy MLP)
    # is 10.4 MB
    assert size < 1.2e7, f'{name} weights are {size / 1e6:.1f} MB'
    assert (path / 'heldout.npz').stat().st_size < 1.1e6
    ms = load_model_set(path)
    want = json.loads((path / 'config.json').read_text())['metrics_heldout_npz']
    card = (path / 'README.md').read_text()
    assert f'{want["recon_psnr_db"]:.2f} dB' in card
    # the card states the calibration the model set runs with
    assert f'`inverse_dynamics.step_gain` = {ms.cfg.inverse_dynamics.step_gain:g}' in card
    z = np.load(path / 'heldout.npz')
    got = evaluate_windows(ms, z['images'], z['q'], z['action'], seed=ms.cfg.train.seed)
    assert got['windows'] == want['windows']
    assert got['recon_psnr_db'] == pytest.approx(want['recon_psnr_db'], abs=0.05)
    for key in ('planner_cosine', 'world_model_cosine', 'planner_cosine_copy'):
        np.testing.assert_allclose(got[key], want[key], atol=2e-3, err_msg=key)
    for key in ('world_model_mse', 'world_model_q_rmse_rad'):
        np.testing.assert_allclose(got[key], want[key], rtol=0.02, atol=1e-4, err_msg=key)
    assert got['inverse_dynamics_rmse_rad'] == pytest.approx(
        want['inverse_dynamics_rmse_rad'], rel=0.02, abs=1e-4)
