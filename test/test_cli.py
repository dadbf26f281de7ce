import re
import subprocess
import sys
from pathlib import Path

import abspose

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "abspose", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_subcommands_and_version_prints_versions():
    out = run("--help")
    assert out.returncode == 0 and "version" in out.stdout
    out = run("version")
    assert out.returncode == 0
    assert f"abspose {abspose.__version__}" in out.stdout and re.search(r"^torch \d", out.stdout, flags=re.M)


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
