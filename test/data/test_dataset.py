"""Dataset builder: alignment at the plan rate, actions from the commanded chunk, cache, errors."""

from pathlib import Path

import numpy as np
import pytest

from vidplan_ros.core.errors import ConfigValueError
from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.data.bags import BagWriter
from vidplan_ros.data.dataset import (DatasetConfig, DatasetError, build_dataset,
                                      split_sequences)
from vidplan_ros.core.images import square_resize
from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.dds_msgs import dds_type

NAMES = load_robot_spec('franka_fr3').joint_names
CMD = '/fr3_arm_controller/joint_trajectory'
LABEL = '/vidplan/expert_trajectory'


def q_at(t: float) -> np.ndarray:
    return np.linspace(0.1, 0.7, 7) * t


def write_episode(path: Path, frames: int = 12, skip: tuple[str, ...] = (),
                  label_offset: dict[int, float] | None = None) -> None:
    """A 10 Hz episode: q(t) linear in t, images whose pixel value encodes the frame index,
    commands targeting q(t + dt) exactly; no command on the last frame. With `label_offset`
    (frame -> rad) the expert's own chunk is recorded too, off the executed one by that much
    on joint 3 at those frames."""
    with BagWriter(path) as bag:
        for k in range(frames):
            t_ns = k * 100_000_000
            t = k * 0.1
            msgs = {
                '/cameras/front/image_raw': cv.image_msg(
                    dds_type, t_ns, 'front', np.full((64, 64, 3), k, np.uint8)),
                '/cameras/wrist/image_raw': cv.image_msg(
                    dds_type, t_ns, 'wrist', np.full((64, 64, 3), 100 + k, np.uint8)),
                '/joint_states': cv.joint_state_msg(
                    dds_type, t_ns, list(NAMES) + ['fr3_finger_joint1'],
                    np.concatenate([q_at(t), [0.04]])),
            }
            if k < frames - 1:
                times = np.array([0.1, 0.2, 0.3])
                msgs[CMD] = cv.joint_trajectory_msg(
                    dds_type, t_ns, NAMES, times, np.stack([q_at(t + s) for s in times]))
                if label_offset is not None:
                    label = np.stack([q_at(t + s) for s in times])
                    label[:, 3] -= label_offset.get(k, 0.0)
                    msgs[LABEL] = cv.joint_trajectory_msg(dds_type, t_ns, NAMES, times, label)
            for topic, msg in msgs.items():
                if topic not in skip:
                    bag.write(topic, t_ns, msg)


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    for i in range(4):
        write_episode(root / f'ep_{i}', frames=12 + i)
    return root


def test_alignment_actions_and_report(bags, tmp_path):
    cfg = DatasetConfig(data_dir=str(bags), cache_dir=str(tmp_path))
    ds = build_dataset(cfg)
    assert ds.report.episodes == 4 and ds.report.sequences == 8
    assert ds.report.plan_rate_hz == pytest.approx(5.0)
    assert ds.report.topics == ['/cameras/front/image_raw', '/cameras/wrist/image_raw',
                                '/joint_states', CMD]
    assert ds.images.shape[1:] == (2, 64, 64, 3) and ds.q.shape[1] == 7
    seq0 = ds.sequence(0)    # offset 0: frames 0, 2, 4, ... of ep_0 (12 frames -> 6)
    assert ds.images[seq0, 0, 0, 0, 0].tolist() == [0, 2, 4, 6, 8, 10]
    assert ds.images[seq0, 1, 0, 0, 0].tolist() == [100, 102, 104, 106, 108, 110]
    seq1 = ds.sequence(1)    # offset 0.1 s: frames 1, 3, ..., 11
    assert ds.images[seq1, 0, 0, 0, 0].tolist() == [1, 3, 5, 7, 9, 11]
    # action = q_target(t + 0.2) - q(t) = 0.2 * slope; none on the episode's last frame
    np.testing.assert_allclose(ds.action[seq0], np.tile(q_at(0.2), (6, 1)), atol=1e-6)
    assert ds.has_action[seq1].tolist() == [True] * 5 + [False]
    assert (ds.action[seq1][-1] == 0).all()
    assert ds.report.frames == len(ds.q) == int(ds.seq_start[-1])
    assert (ds.perturbation == 0).all()       # no expert chunk recorded: unperturbed
    np.testing.assert_array_equal(ds.label_action, ds.action)   # ... and nothing else to imitate


def test_perturbation_is_the_executed_commands_distance_from_the_experts(tmp_path):
    write_episode(tmp_path / 'bags' / 'ep_0', frames=12, label_offset={4: 0.25, 7: 0.1})
    ds = build_dataset(DatasetConfig(data_dir=str(tmp_path / 'bags'),
                                     cache_dir=str(tmp_path / 'c')))
    assert ds.report.topics[-1] == CMD        # the expert's chunk is optional
    np.testing.assert_allclose(ds.perturbation[ds.sequence(0)], [0, 0, 0.25, 0, 0, 0],
                               atol=1e-6)     # frames 0, 2, 4, ...
    np.testing.assert_allclose(ds.perturbation[ds.sequence(1)], [0, 0, 0, 0.1, 0, 0],
                               atol=1e-6)     # frames 1, 3, 5, 7, ...
    # the imitation target is the expert's chunk: executed action minus the offset there
    seq0 = ds.sequence(0)
    expect = ds.action[seq0].copy()
    expect[2, 3] -= 0.25
    np.testing.assert_allclose(ds.label_action[seq0], expect, atol=1e-6)
    assert not np.allclose(ds.label_action, ds.action)
    again = build_dataset(DatasetConfig(data_dir=str(tmp_path / 'bags'),
                                        cache_dir=str(tmp_path / 'c')))
    assert again.report.cache_hit
    np.testing.assert_array_equal(again.perturbation, ds.perturbation)
    np.testing.assert_array_equal(again.label_action, ds.label_action)


def test_cache_hit_and_split(bags, tmp_path):
    cfg = DatasetConfig(data_dir=str(bags), cache_dir=str(tmp_path))
    first = build_dataset(cfg)
    again = build_dataset(cfg)
    assert not first.report.cache_hit and again.report.cache_hit
    assert Path(again.report.cache_path).exists()
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.action, again.action)
    train, held = split_sequences(again, 0.25, seed=0)
    assert len(held) == 2 and len(train) == 6          # one episode = both its sequences
    assert len(set(again.seq_episode[held].tolist())) == 1
    assert split_sequences(again, 0.25, seed=0)[1].tolist() == held.tolist()


def test_missing_or_empty_topic_fails_clearly(tmp_path):
    write_episode(tmp_path / 'bags' / 'ep_0', skip=(CMD,))
    cfg = DatasetConfig(data_dir=str(tmp_path / 'bags'), cache_dir=str(tmp_path / 'c'))
    with pytest.raises(DatasetError, match='required topic /fr3_arm_controller'):
        build_dataset(cfg)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='no episode bags'):
        build_dataset(DatasetConfig(data_dir=str(tmp_path / 'empty'), cache_dir=str(tmp_path)))


def test_config_validation():
    with pytest.raises(ConfigValueError):
        DatasetConfig(plan_dt_s=0.0)
    with pytest.raises(ConfigValueError):
        DatasetConfig(grid_offsets_s=(0.3,))


def test_frames_of_another_size_are_cropped_and_resized(tmp_path):
    """A camera recording 128x96 (W x H) frames gives centre-cropped 96x96 -> 64x64 frames,
    exactly what `square_resize` (the perception preprocessing) makes; the report says so."""
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (3, 96, 128, 3), dtype=np.uint8)
    with BagWriter(tmp_path / 'bags' / 'ep_0') as bag:
        for k in range(3):
            t_ns = k * 200_000_000
            for cam in ('front', 'wrist'):
                bag.write(f'/cameras/{cam}/image_raw', t_ns,
                          cv.image_msg(dds_type, t_ns, cam, raw[k]))
            bag.write('/joint_states', t_ns, cv.joint_state_msg(dds_type, t_ns, NAMES,
                                                                q_at(0.2 * k)))
            bag.write(CMD, t_ns, cv.joint_trajectory_msg(dds_type, t_ns, NAMES, [0.2],
                                                         q_at(0.2 * k + 0.2)[None]))
    cfg = DatasetConfig(data_dir=str(tmp_path / 'bags'), cache_dir=str(tmp_path / 'c'),
                        grid_offsets_s=(0.0,))
    ds = build_dataset(cfg)
    assert ds.images.shape == (3, 2, 64, 64, 3)
    for k in range(3):
        np.testing.assert_array_equal(ds.images[k, 1], square_resize(raw[k], 64))
    assert ds.report.source_image_sizes == {'front': '128x96', 'wrist': '128x96'}
    assert 'resized to 64x64' in ds.report.summary()
    assert build_dataset(cfg).report.source_image_sizes == ds.report.source_image_sizes


def test_declared_but_empty_topic_fails_clearly(tmp_path):
    with BagWriter(tmp_path / 'bags' / 'ep_0') as bag:
        bag.add_topic(CMD, 'trajectory_msgs/msg/JointTrajectory')
        for k in range(3):
            t_ns = k * 100_000_000
            for cam in ('front', 'wrist'):
                bag.write(f'/cameras/{cam}/image_raw', t_ns,
                          cv.image_msg(dds_type, t_ns, cam, np.zeros((64, 64, 3), np.uint8)))
            bag.write('/joint_states', t_ns, cv.joint_state_msg(dds_type, t_ns, NAMES,
                                                                q_at(0.1 * k)))
    cfg = DatasetConfig(data_dir=str(tmp_path / 'bags'), cache_dir=str(tmp_path / 'c'))
    with pytest.raises(DatasetError, match=f'required topic {CMD} has no messages'):
        build_dataset(cfg)


def test_images_are_concatenated_in_order_and_each_sequence_freed():
    from vidplan_ros.data.dataset import _concat_freeing
    rng = np.random.default_rng(0)
    seqs = [{'images': rng.integers(0, 255, (n, 2, 4, 4, 3), dtype=np.uint8), 'q': n}
            for n in (3, 1, 5)]
    want = np.concatenate([s['images'] for s in seqs])
    got = _concat_freeing(seqs, 'images')
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.uint8
    assert all('images' not in s and 'q' in s for s in seqs)
