"""The `abspose` command: one subcommand per job. Errors name the file and what was wrong; exit code 2."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

from abspose import __version__

# Subcommands register here: name -> (help, add_arguments(parser), run(args) -> exit code).
Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {}


# Modules whose import registers more subcommands.
_COMMAND_MODULES = (
    "abspose.detect_cli",
    "abspose.models.weights_cli",
    "abspose.training.lifter_cli",
    "abspose.ros.run_cli",
)


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> Callable:
    """Decorator: register ``run(args) -> exit code`` as subcommand ``name``; ``add_arguments`` declares options."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (help, add_arguments or (lambda parser: None), run)
        return run

    return register


def number(
    kind: type = int,
    low: float = -math.inf,
    high: float = math.inf,
    why: str = "",
    open_low: bool = False,
    open_high: bool = False,
) -> Callable[[str], float]:
    """argparse type: a ``kind`` (int or float) within [low, high] (bounds excluded where ``open_*``); the
    error names the limit and, with ``why``, the reason."""

    def parse(text: str) -> float:
        value = kind(text)
        if not (low < value if open_low else low <= value) or not (value < high if open_high else value <= high):
            lo, hi = "(" if open_low else "[", ")" if open_high else "]"
            if high < math.inf:
                bounds = f"in {lo}{low:g}, {high:g}{hi}"
            else:
                bounds = f"{'greater than' if open_low else 'at least'} {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}{f' ({why})' if why else ''}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid int value: 'x'"
    return parse


@command("version", "print the versions of abspose, torch and the devices torch can use")
def _version(args: argparse.Namespace) -> int:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"abspose {__version__}\ntorch {torch.__version__}\ncuda {cuda}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    import importlib

    for module in _COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="abspose",
        description="Metric 3D skeletons of every person a camera sees (the ROS-free tools of abspose_ros).",
    )
    parser.add_argument("--version", action="version", version=f"abspose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except (OSError, ValueError) as exc:
        print(f"abspose {args.command}: error: {exc}", file=sys.stderr)
        return 2
