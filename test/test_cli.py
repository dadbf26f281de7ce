import re
import subprocess
import sys
from pathlib import Path

import abspose
from abspose.cli import main

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "abspose", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_subcommands_and_version_prints_versions():
    out = run("--help")
    assert out.returncode == 0 and "version" in out.stdout
    out = run("version")
    assert out.returncode == 0
    assert f"abspose {abspose.__version__}" in out.stdout and re.search(r"^torch \d", out.stdout, flags=re.M)
    out = run()  # no subcommand: the help, and success
    assert out.returncode == 0 and "usage: abspose" in out.stdout and "version" in out.stdout
    assert main([]) == 0  # what ros2 run's entry point and scripts get back


def test_unknown_subcommand_fails_with_usage():
    out = run("no-such-command")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def readme_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    return [line for line in block if line and not line.startswith("#")]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    install_and_run, run_tests = readme_commands()[:2]
    assert "torch==2.13.0" in install_and_run and "abspose" in install_and_run
    assert "pytest" in run_tests
    assert run_tests in (REPO / ".ci" / "run").read_text()


def test_numbers_out_of_range_are_refused_with_the_argument_and_limit(capsys):
    import pytest

    from abspose.cli import build_parser

    parser = build_parser()
    cases = [
        (["run", "x.bag", "--hfov", "180"], "argument --hfov: must be in (0, 180), got 180"),
        (["run", "x.bag", "--fps", "0"], "argument --fps: must be greater than 0, got 0"),
        (["detect", "x.jpg", "--min-score", "1.5"], "argument --min-score: must be in [0, 1], got 1.5"),
        (["detect", "x.jpg", "--max-people", "-1"], "argument --max-people: must be at least 0, got -1"),
        (["train-lifter", "--steps", "2"], "argument --steps: must be at least 3 (the one-cycle schedule"),
        (["train-lifter", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err, argv
    # the limits themselves are accepted where they are inclusive
    assert parser.parse_args(["detect", "x.jpg", "--min-score", "1", "--max-people", "0"]).min_score == 1.0
    assert parser.parse_args(["run", "x.bag", "--hfov", "179.5"]).hfov == 179.5
