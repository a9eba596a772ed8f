"""The `vidplan` command.

Subcommands land with the parts they drive (demo, launch, train, export, eval, replay, bench).
Small ones are functions registered in `COMMANDS`; bigger ones live beside their code with their
own `main(argv)` and are listed in `DELEGATES` (imported only when used).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

import vidplan_ros
from vidplan_ros.core.errors import VidplanError


def _robots(args: argparse.Namespace) -> int:
    """List the bundled robots, or show one robot spec (bundled name or YAML path)."""
    from vidplan_ros.core.robot_spec import available_robots, load_robot_spec
    if not args.robot:
        for name in available_robots():
            spec = load_robot_spec(name)
            interface = spec.interfaces.command_interface
            print(f'{name:16s} {spec.num_joints:2d} joints  {interface:20s}'
                  f' {spec.description.split(". ")[0]}')
        return 0
    spec = load_robot_spec(args.robot)
    print(f'{spec.name}: {spec.description}')
    print(f'  command interface: {spec.interfaces.command_interface}, '
          f'control {spec.control_rate_hz:g} Hz')
    print(f'  {"joint":28s} {"min":>8s} {"max":>8s} {"vel":>7s} {"acc":>7s} {"jerk":>7s}')
    for i, j in enumerate(spec.joint_names):
        print(f'  {j:28s} {spec.position_min_rad[i]:8.4f} {spec.position_max_rad[i]:8.4f} '
              f'{spec.velocity_max_rad_s[i]:7.3f} {spec.acceleration_max_rad_s2[i]:7.1f} '
              f'{spec.jerk_max_rad_s3[i]:7.0f}')
    return 0


def _build_robots(sub: argparse.ArgumentParser) -> None:
    sub.add_argument('robot', nargs='?', help='bundled robot name or path to a robot YAML')


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int], str]] = {
    'robots': (_build_robots, _robots, 'list bundled robots or validate and show one'),
}


# name -> (module with main(argv), help)
DELEGATES: dict[str, tuple[str, str]] = {
    'launch': ('vidplan_ros.bringup.vidplan_launch', 'start a node graph without ROS: '
               '`vidplan launch sim --robot franka --task push` (the demo) or `vidplan launch '
               'nodes ...`'),
    'sim': ('vidplan_ros.nodes.sim_node', 'run the embedded MuJoCo sim node (--ros-args ...)'),
    'perception': ('vidplan_ros.nodes.perception_node',
                   'run the perception node: cameras + joints -> latent (--ros-args ...)'),
    'planner': ('vidplan_ros.nodes.planner_node',
                'run the planner node: latent -> video plan + preview (--ros-args ...)'),
    'grounding': ('vidplan_ros.nodes.grounding_node',
                  'run the grounding node: video plan -> joint trajectory (--ros-args ...)'),
    'record': ('vidplan_ros.data.recorder', 'record topics into a ROS 2 bag (mcap)'),
    'collect': ('vidplan_ros.data.collect', 'record scripted-expert episodes from the sim'),
    'experts': ('vidplan_ros.sim.rollout', 'measure scripted-expert success in the sim'),
    'bag': ('vidplan_ros.data.bags', 'inspect a bag: topics, counts, metadata'),
    'train': ('vidplan_ros.nn.train', 'train the model set of a task from bags'),
    'export': ('vidplan_ros.runtime.export', 'export a model set to ONNX (manifest with sha256 '
               'hashes) and, with --engine, build its TensorRT engines'),
    'bench': ('vidplan_ros.cli_bench',
              'benchmarks: `vidplan bench sim|transport|grounding|runtime|graph`'),
    'replay': ('vidplan_ros.data.replay', 'replay a ROS 2 bag through the stack in shadow mode: '
               'an output bag and a score report'),
    'eval': ('vidplan_ros.eval.evaluate',
             'closed-loop success of grounding methods under video-plan corruptions'),
    'scaling': ('vidplan_ros.eval.scaling', 'a data-scaling curve (table + plot) from '
                '`vidplan eval` runs of model sets trained on different numbers of episodes'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='vidplan', description='Plan by imagining: latent video planning for ROS 2 robots.')
    parser.add_argument('--version', action='version', version=vidplan_ros.__version__)
    subs = parser.add_subparsers(dest='command', required=True)
    for name, (build, _run, help_text) in COMMANDS.items():
        build(subs.add_parser(name, help=help_text, description=help_text))
    for name, (_module, help_text) in DELEGATES.items():
        subs.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATES:
        import importlib
        module = importlib.import_module(DELEGATES[argv[0]][0])
        try:
            return int(module.main(argv[1:]) or 0)
        except VidplanError as exc:
            print(f'vidplan {argv[0]}: error: {exc}', file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except VidplanError as exc:  # a user error: say what and how to fix, no traceback
        print(f'vidplan {args.command}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
