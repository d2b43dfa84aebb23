"""requirements.lock: every install (make dev, make test, CI, the image) takes its versions.

pyproject.toml says what Pacekeeper works with (ranges); the lock says what it was tested with
(exact pins, dev tools included), and ``make lock`` re-derives the second from the first.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.ops.test_deploy import dockerfile_instructions

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
MAKEFILE = (ROOT / "Makefile").read_text()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"not an exact pin: {line!r}"
        pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def requirements() -> list[Requirement]:
    listed = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]
    return [Requirement(text) for text in listed]


def make_recipe(target: str) -> tuple[str, str]:
    """(prerequisites, recipe) of a Makefile target."""
    match = re.search(rf"^{re.escape(target)}:(.*)\n((?:\t.*\n)*)", MAKEFILE, re.MULTILINE)
    assert match, target
    return match.group(1), match.group(2)


def test_the_lock_pins_every_requirement_within_its_range() -> None:
    pins = locked()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}: run `make lock`"
        )


def test_the_queue_libraries_are_capped_at_their_next_major() -> None:
    # The worker relies on how RQ and redis-py stop the pub/sub thread (worker/main.py).
    pins = locked()
    bounds = {canonicalize_name(r.name): r.specifier for r in requirements()}
    for name in map(canonicalize_name, ("rq", "redis")):
        next_major = Version(f"{pins[name].major + 1}")
        assert not bounds[name].contains(next_major), f"{name} has no upper bound"


def test_make_installs_the_lock_and_reinstalls_when_it_changes() -> None:
    prerequisites, recipe = make_recipe("$(BIN)/pacekeeper")
    assert {"$(LOCK)", "pyproject.toml"} <= set(prerequisites.split())
    assert re.search(r"^LOCK := requirements\.lock$", MAKEFILE, re.MULTILINE)
    assert "pip install -q -r $(LOCK)" in recipe
    assert "pip install -q --no-deps -e ." in recipe
    for target in ("dev", "test", "lint", "typecheck", "lock"):
        assert "$(BIN)/pacekeeper" in make_recipe(target)[0], target


def test_make_lock_refreshes_the_lock_from_pyproject() -> None:
    _, recipe = make_recipe("lock")
    assert "pip-compile" in recipe and "--output-file $(LOCK)" in recipe
    assert "--extra dev" in recipe and "pyproject.toml" in recipe


def test_the_image_installs_the_locked_versions() -> None:
    runs = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN"]
    copies = [rest for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    assert any("requirements.lock" in rest.split()[:-1] for rest in copies)
    installs = [rest for rest in runs if "pip install" in rest]
    assert re.search(r"(--constraint|-c|-r) requirements\.lock", installs[0])
    assert all("--no-deps" in rest for rest in installs[1:])
