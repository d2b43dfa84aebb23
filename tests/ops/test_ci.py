"""CI: lint and types before the tests, and with CI=true nothing skips: a missing service
or a module that no longer imports fails.

Each skip case runs a small test file in its own pytest process with this suite's conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]

IMPORT_SKIP = """
import pytest
pytest.importorskip("pacekeeper_no_such_module")

def test_never_runs():
    pass
"""

PASSING = """
def test_passes():
    pass
"""

SERVICE_AND_RUNTIME_SKIP = """
import pytest

def test_needs_postgresql(pg_url):
    pass

def test_skips_itself():
    pytest.skip("not today")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_to_fail():
    assert False

def test_passes():
    pass
"""


def test_ci_lints_and_type_checks_before_the_readmes_test_command() -> None:
    steps = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "echo"))
    ]
    assert "export CI=true" in steps
    assert steps.index("export CI=true") < steps.index("make test")
    assert steps.index("make lint") < steps.index("make typecheck") < steps.index("make test")
    assert steps.index("make .venv/bin/pacekeeper") < steps.index("make lint")


def test_pre_commit_runs_the_checks_ci_runs_first_with_the_locked_tools(tmp_path: Path) -> None:
    """The hooks are CI's lint and type steps (the same pinned tools from .venv), and they
    catch what CI would: a badly formatted file fails the format hook."""
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    make = (ROOT / "Makefile").read_text()
    assert set(hooks) == {"ruff", "ruff-format", "mypy"}
    for hook in hooks.values():
        tool = hook["entry"].split()[0]
        assert tool.startswith(".venv/bin/") and (ROOT / tool).exists(), tool
        assert f"$(BIN)/{tool.removeprefix('.venv/bin/')}" in make  # make lint / typecheck
    assert hooks["mypy"]["pass_filenames"] is False  # the whole project, as make typecheck
    bad = tmp_path / "bad.py"
    bad.write_text("x=( 1,\n 2 )\n")
    entry = hooks["ruff-format"]["entry"].split()
    result = subprocess.run([str(ROOT / entry[0]), *entry[1:], str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "would be reformatted" in result.stdout + result.stderr


def run_probe(tmp_path: Path, source: str, *, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(source)
    (tmp_path / "test_passing.py").write_text(PASSING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(
        PYTHONPATH=str(ROOT),
        # Nothing listens there: PostgreSQL is "missing".
        PACEKEEPER_TEST_PG_ADMIN_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
    )
    if ci:
        env["CI"] = "true"
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "tests.conftest"]
    command += ["-p", "no:cacheprovider", str(tmp_path)]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_module_that_does_not_import_is_skipped_away_from_ci(tmp_path: Path) -> None:
    result = run_probe(tmp_path, IMPORT_SKIP, ci=False)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout


def test_a_module_that_does_not_import_fails_in_ci(tmp_path: Path) -> None:
    result = run_probe(tmp_path, IMPORT_SKIP, ci=True)
    assert result.returncode != 0, result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1]
    assert "CI=true allows no skip" in result.stdout
    assert "pacekeeper_no_such_module" in result.stdout


def test_missing_services_and_skips_pass_quietly_away_from_ci(tmp_path: Path) -> None:
    result = run_probe(tmp_path, SERVICE_AND_RUNTIME_SKIP, ci=False)
    assert result.returncode == 0, result.stdout
    assert "2 passed, 2 skipped, 1 xfailed" in result.stdout


def test_missing_services_and_skips_fail_in_ci(tmp_path: Path) -> None:
    result = run_probe(tmp_path, SERVICE_AND_RUNTIME_SKIP, ci=True)
    assert result.returncode == 1, result.stdout
    summary = result.stdout.splitlines()[-1]
    assert "1 failed, 2 passed, 1 xfailed, 1 error" in summary, result.stdout
    assert "PostgreSQL is not reachable" in result.stdout
    assert "CI=true allows no skip: not today" in result.stdout
