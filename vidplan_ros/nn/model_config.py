"""Config of one model set (autoencoder, latent video planner, world model, inverse dynamics).

Every tensor size comes from here. Shapes, with V views, S image size, C latent channels,
h = w = latent size, n joints (proprio = action dim), H horizon::

    image  (B, V, 3, S, S) float in [0, 1]    latent z (B, V, C, h, w), normalised per channel
    q      (B, n) normalised proprio           a (B, n) normalised action (delta q, rad / std)
    plan   (B, H, V, C, h, w) future latents z_{t+1..t+H}
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidplan_ros.core.config import require, require_one_of, require_positive
from vidplan_ros.data.dataset import DatasetConfig

__all__ = ['AutoencoderConfig', 'InverseDynamicsConfig', 'ModelConfig', 'PlannerConfig',
           'TrainConfig', 'WorldModelConfig']


@dataclass(frozen=True)
class AutoencoderConfig:
    """Per-view conv autoencoder (weights shared across views), stride 2 per level."""

    channels: tuple[int, ...] = (16, 32, 64)   # one stride-2 level each: S / 2**len = h
    latent_channels: int = 8

    def __post_init__(self) -> None:
        require_positive(self, 'channels', 'latent_channels')


@dataclass(frozen=True)
class PlannerConfig:
    """Rectified-flow conv denoiser on the latent grid (H*V*C stacked channels): d_model
    channels, `layers` FiLM residual blocks, one cross-attention layer with `heads` heads."""

    horizon: int = 8
    d_model: int = 128
    layers: int = 3
    heads: int = 4
    sample_steps: int = 8         # K Euler steps
    # Sampling temperature: the flow starts from noise x this. 1 draws from the learned
    # distribution; 0 integrates the flow from x0 = 0, a single plan near the conditional mean
    # (a closed-loop calibration, like inverse_dynamics.step_gain: see the model card).
    noise_scale: float = 1.0
    # Self-attention over the grid cells beside the cross-attention, so a cell where the arm
    # is can attend to the cell where the object is (a conv stack reaches across the grid only
    # through its depth).
    self_attention: bool = False
    # A summary token of the whole current latent (an MLP over the flattened grid, as a policy
    # regressor reads it) added to the FiLM conditioning and the context tokens.
    global_state: bool = False
    # A policy head (conv + MLP from the current latent and joints to the H actions, trained
    # on the recorded actions beside the flow loss) whose actions condition the plan: the
    # flow then renders the motion it is told (the recorded actions while training, the
    # head's at inference).
    action_prior: bool = False
    # > 0 (with action_prior): the head estimates the task's state (this many values: the
    # data's /vidplan/task_state, e.g. cube and goal) from the latent, and its policy reads
    # only that estimate and the joints.
    state_dim: int = 0
    # the state head's policy MLP (with state_dim): hidden width (0: max(2 d_model, 256)) and
    # number of hidden layers
    policy_width: int = 0
    policy_layers: int = 2

    @property
    def policy_hidden(self) -> int:
        """The state head's policy MLP width: `policy_width`, or max(2 d_model, 256)."""
        return self.policy_width or max(2 * self.d_model, 256)

    def __post_init__(self) -> None:
        require_positive(self, 'horizon', 'd_model', 'layers', 'heads', 'sample_steps',
                         'policy_layers')
        require(self.policy_width >= 0, 'policy_width', self.policy_width,
                'a width >= 0 (0: max(2 d_model, 256))')
        require(self.state_dim >= 0 and (self.state_dim == 0 or self.action_prior),
                'state_dim', self.state_dim, '0, or > 0 together with action_prior: true')
        require(self.noise_scale >= 0.0, 'noise_scale', self.noise_scale, '>= 0')
        require(self.d_model % self.heads == 0, 'd_model', self.d_model,
                'a multiple of heads')


@dataclass(frozen=True)
class WorldModelConfig:
    """Conv residual net on the stacked views, FiLM from (q, a); predicts dz and dq."""

    hidden: int = 64
    blocks: int = 3

    def __post_init__(self) -> None:
        require_positive(self, 'hidden', 'blocks')


@dataclass(frozen=True)
class InverseDynamicsConfig:
    hidden: int = 64
    # Calibration of the grounded step (actions are scaled by it), measured in closed loop
    # (`vidplan eval` sweeps, in the model card): a planner's imagined motion can be slower
    # than the expert's, and a regression shrinks ambiguous steps further.
    step_gain: float = 1.0

    def __post_init__(self) -> None:
        require_positive(self, 'hidden', 'step_gain')


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    heldout_fraction: float = 0.1
    ae_steps: int = 1500
    ae_batch: int = 32
    ae_lr: float = 2e-3
    dyn_steps: int = 3000         # planner, world model, inverse dynamics (on latents)
    dyn_batch: int = 64
    dyn_lr: float = 1e-3
    planner_steps: int = 0        # `--only planner` retraining: steps (0: dyn_steps),
    planner_batch: int = 0        # batch (0: dyn_batch)
    planner_lr: float = 0.0       # and peak learning rate (0: dyn_lr)
    # `--only planner`: train the planner only on windows whose executed commands stay within
    # this of the expert's own (rad, the dataset's `perturbation`), so it imagines the expert
    # recovering rather than the injected detours; the world model and inverse dynamics learn
    # from every window. 0: every window. At 0.12 rad on franka_reach two runs beat the
    # unfiltered retrain on the same data by 8-13 points, within the spread between runs
    # (results/eval/franka_reach_scaling/README.md).
    planner_max_perturbation_rad: float = 0.0
    # `--only planner`: weight of the action loss on the planner's predicted first frame,
    # |g(z_t, z^_{t+1}, q_t) - a_t|^2 with the frozen inverse dynamics g, added to the flow
    # loss so the imagined motion carries the recorded action (0: flow loss only).
    planner_action_weight: float = 0.0
    # What the planner's action-prior head imitates: 'executed', the commands that ran (the
    # expert's plus the DART noise), or 'expert', the expert's own chunk where the bags
    # record one (its correction from the perturbed state). The flow, the world model and
    # inverse dynamics always use the executed commands. On franka_push 'expert' raised the
    # head's held-out cosine to the expert's labels from 0.35 to 0.40 but pushed fewer cubes
    # (4/50 against 6-12/50; results/eval/planner_diagnosis), so 'executed' stays.
    prior_target: str = 'executed'
    # `--only prior`: the planner's action-prior head (state estimate + policy) alone, the
    # flow frozen, for prior_steps at prior_batch and peak prior_lr. On franka_push 8000 steps
    # at batch 256 with a 3 x 512 policy took the head alone from 15/30 to 26/30 on tuning
    # seeds and GVP-WM from 15/50 to 38/50 on unseen ones (results/eval/state_head).
    prior_steps: int = 4000
    prior_batch: int = 256
    prior_lr: float = 1e-3
    wm_rollout: int = 3           # world-model training: k-step open-loop loss
    checkpoint_every: int = 500
    threads: int = 2
    heldout_windows: int = 6      # windows saved to heldout.npz for the reproduction test
    # Held-out losses every eval_every steps (the card's curves); a stage stops early once its
    # held-out loss has not improved for `patience` evaluations (0: run all steps), and keeps
    # the weights of its best evaluation.
    eval_every: int = 250
    patience: int = 0

    def __post_init__(self) -> None:
        require(0 < self.heldout_fraction < 1, 'heldout_fraction', self.heldout_fraction,
                'a fraction in (0, 1)')
        require(min(self.planner_steps, self.planner_batch, self.planner_lr) >= 0,
                'planner_steps', (self.planner_steps, self.planner_batch, self.planner_lr),
                'values >= 0 (0: the dyn_ value)')
        require(self.planner_action_weight >= 0, 'planner_action_weight',
                self.planner_action_weight, 'a weight >= 0 (0: flow loss only)')
        require(self.planner_max_perturbation_rad >= 0, 'planner_max_perturbation_rad',
                self.planner_max_perturbation_rad, 'an angle >= 0 rad (0: every window)')
        require_one_of(self, 'prior_target', ('expert', 'executed'))
        require_positive(self, 'prior_steps', 'prior_batch', 'prior_lr')
        require(self.ae_steps >= 0 and self.dyn_steps >= 0, 'ae_steps',
                (self.ae_steps, self.dyn_steps), 'step counts >= 0')
        require_positive(self, 'ae_batch', 'ae_lr', 'dyn_batch', 'dyn_lr', 'wm_rollout',
                         'checkpoint_every', 'threads', 'heldout_windows', 'eval_every')
        require(self.patience >= 0, 'patience', self.patience,
                'a number of evaluations >= 0 (0: no early stop)')


@dataclass(frozen=True)
class ModelConfig:
    """One model set for one robot and task."""

    name: str = 'franka_reach'
    task: str = 'franka/reach'
    action_dim: int = 7           # = proprio dim (arm joints of the robot spec)
    views: int = 2
    image_size: int = 64
    data: DatasetConfig = field(default_factory=DatasetConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    inverse_dynamics: InverseDynamicsConfig = field(default_factory=InverseDynamicsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        require_positive(self, 'action_dim', 'views', 'image_size')
        require(self.views == len(self.data.cameras), 'views', self.views,
                f'the number of data.cameras ({len(self.data.cameras)})')
        require(self.image_size == self.data.image_size, 'image_size', self.image_size,
                f'data.image_size ({self.data.image_size})')
        levels = len(self.autoencoder.channels)
        require(self.image_size % (2 ** levels) == 0, 'image_size', self.image_size,
                f'divisible by 2**len(autoencoder.channels) = {2 ** levels}')

    @property
    def latent_size(self) -> int:
        return self.image_size // (2 ** len(self.autoencoder.channels))

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(V, C, h, w) of one frame's latent."""
        s = self.latent_size
        return (self.views, self.autoencoder.latent_channels, s, s)
