"""The README's quick start is what users and CI run."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_quick_start_has_exactly_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands), commands
    assert "sitcen run" in commands[0] and "pip install" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    install, _, _ = _quick_start_commands()[0].partition(" && ")
    assert install in ci, f"{install!r} not in .ci/run"
    assert _quick_start_commands()[1] in ci, ".ci/run must run the README's test command"


def test_readme_benchmark_table_is_filled():
    assert "BENCH_TABLE" not in (ROOT / "README.md").read_text()
