"""The ``pacekeeper`` command as a person at a terminal meets it: every sub-command explains
itself, a fatal error is one readable line, and a reader run in the wrong directory says so
instead of creating an empty project there."""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACEKEEPER_")}
    clean.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=tmp_path, env=clean,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def sub_commands() -> dict[str, argparse.ArgumentParser]:
    subparsers = build_parser()._subparsers
    assert subparsers is not None
    action = subparsers._group_actions[0]
    assert isinstance(action, argparse._SubParsersAction)
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(sub_commands()))
def test_every_sub_command_has_a_description_and_every_option_a_help(name: str) -> None:
    parser = sub_commands()[name]
    assert parser.description and parser.description.endswith(".")
    for action in parser._actions:
        assert action.help, f"pacekeeper {name}: {action.dest} has no help"
    shown = parser.format_help()
    assert "(default: None)" not in shown
    for action in parser._actions:
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            assert f"(default: {action.default})" in shown


def test_status_outside_a_project_says_so_and_creates_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, "status")
    assert result.returncode == 78
    (line,) = result.stderr.strip().splitlines()
    assert "no database at ./var/pacekeeper.db" in line and "PACEKEEPER_DATABASE_URL" in line
    assert list(tmp_path.iterdir()) == []  # no ./var, no empty database file


def test_a_fatal_error_is_one_readable_line_with_the_way_out(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = run(tmp_path, "status", PACEKEEPER_DATABASE_URL=f"sqlite:///{empty}")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("pacekeeper status: OperationalError: ")
    assert "no such table" in line and "run `pacekeeper db upgrade`" in line
    assert "Traceback" not in result.stdout + result.stderr
