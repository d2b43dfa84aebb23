"""docker-compose.yml and the Dockerfile, checked without Docker.

The compose file is parsed and checked for what a deployment relies on; every command it
runs is parsed by the real CLI, and run for real where this machine can: the migration,
the worker and monitor processes with their health checks, and the paper exchange and the
receiver once they exist.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import healthcheck
from app.cli import build_parser
from app.config import Settings
from app.devstack import ChildSpec, PrivateRedis, Supervisor, app_command
from tests.ops.test_cli import sub_commands
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = {
    name: svc for name, svc in SERVICES.items() if svc.get("image", "").startswith("pacekeeper")
}
ONE_OFF = {name for name, svc in SERVICES.items() if svc.get("restart") == "no"}
SUBCOMMANDS = set(sub_commands())


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with an empty environment."""
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    value = re.sub(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", replace, value)
    return value.replace("$$", "$")


def service_env(name: str, env: dict[str, str] | None = None) -> dict[str, str]:
    raw = SERVICES[name].get("environment", {})
    return {key: interpolate(str(value), env) for key, value in raw.items()}


def test_compose_runs_every_component_of_the_design() -> None:
    assert set(SERVICES) == {
        "redis", "postgres", "migrate", "check", "api", "worker", "monitor", "paper"
    }  # fmt: skip
    assert set(APP_SERVICES) == {"migrate", "check", "api", "worker", "monitor", "paper"}
    assert {"migrate", "check"} == ONE_OFF


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_app_command_is_a_real_pacekeeper_sub_command(name: str) -> None:
    command = APP_SERVICES[name]["command"]
    assert command[0] in SUBCOMMANDS
    args = build_parser().parse_args(command)
    assert args.command == command[0]


def test_every_dependency_exists_and_waits_for_health() -> None:
    for name, svc in SERVICES.items():
        for target, rule in svc.get("depends_on", {}).items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            expected = "service_completed_successfully" if target in ONE_OFF else "service_healthy"
            assert rule == {"condition": expected}, f"{name} -> {target}"
    for name in ("api", "worker", "monitor"):
        needs = SERVICES[name]["depends_on"]
        assert {"redis", "postgres", "migrate", "check"} <= set(needs)
    assert set(SERVICES["migrate"]["depends_on"]) == {"postgres"}


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, svc in SERVICES.items():
        check = svc.get("healthcheck", {})
        if name in ONE_OFF:
            assert check == {"disable": True}
            continue
        assert check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL")


@pytest.mark.parametrize("name", ["api", "worker", "monitor", "paper"])
def test_app_healthchecks_check_their_own_role(name: str) -> None:
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "app.healthcheck"]
    args = healthcheck.build_parser().parse_args(test[4:])
    assert args.role == name == SERVICES[name]["command"][0]
    # Liveness only: a readiness check failing while Redis is down would get a receiver that
    # still stores signals restarted by an orchestrator, keeping TradingView away.
    assert not args.ready


def test_redis_keeps_jobs_across_restarts_and_never_evicts() -> None:
    redis_svc = SERVICES["redis"]
    assert redis_svc["image"].startswith("redis:7")
    command = " ".join(redis_svc["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(volume.endswith(":/data") for volume in redis_svc["volumes"])
    assert redis_svc["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_postgres_has_a_volume_and_pg_isready() -> None:
    pg = SERVICES["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    declared = set(COMPOSE["volumes"])
    for svc in SERVICES.values():
        for volume in svc.get("volumes", []):
            assert volume.split(":")[0] in declared


def test_workers_can_be_scaled() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    for svc in APP_SERVICES.values():
        assert "container_name" not in svc


def test_app_environment_points_at_the_compose_services() -> None:
    env = service_env("worker")
    url = make_url(env["PACEKEEPER_DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "postgres" and url.port == 5432
    assert env["PACEKEEPER_REDIS_URL"] == "redis://redis:6379/0"
    assert env["PACEKEEPER_BINANCE_API_URL"] == "http://paper:8100"
    assert env["PACEKEEPER_BINANCE_FAPI_URL"] == "http://paper:8100"
    # Going live is a matter of .env: the venue URLs follow it.
    live = service_env("worker", {"PACEKEEPER_BINANCE_API_URL": "https://live-exchange.example"})
    assert live["PACEKEEPER_BINANCE_API_URL"] == "https://live-exchange.example"
    # The values are valid settings, and the ports match the services.
    values: dict[str, Any] = {k.removeprefix("PACEKEEPER_").lower(): v for k, v in env.items()}
    settings = Settings(_env_file=None, **values)
    assert settings.env == "prod"
    assert f":{settings.paper_port}" in env["PACEKEEPER_BINANCE_API_URL"]
    assert SERVICES["paper"]["ports"][0].endswith(f":{settings.paper_port}")
    assert SERVICES["api"]["ports"][0].endswith(f":{settings.api_port}")


def test_the_receiver_will_not_start_without_a_webhook_secret() -> None:
    with pytest.raises(KeyError, match="PACEKEEPER_WEBHOOK_SECRET"):
        service_env("api")
    env = service_env("api", {"PACEKEEPER_WEBHOOK_SECRET": "s" * 32})
    assert env["PACEKEEPER_WEBHOOK_SECRET"] == "s" * 32


@pytest.mark.parametrize("secret", ["changeme", "short"])
def test_a_placeholder_secret_stops_compose_with_the_reason(tmp_path: Path, secret: str) -> None:
    """.env.example's placeholder passes compose's ${...:?} (it is set): the one-off check
    refuses it with exit 78 and a message naming the setting, and since api, worker and
    monitor wait for it to complete successfully, `docker compose up` fails."""
    env = {**os.environ, **service_env("check", {"PACEKEEPER_WEBHOOK_SECRET": secret})}
    command = [sys.executable, "-m", "app.cli", *SERVICES["check"]["command"]]
    refused = subprocess.run(command, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 78
    assert "PACEKEEPER_WEBHOOK_SECRET" in refused.stderr and "openssl rand" in refused.stderr
    good = {**env, "PYTHONPATH": str(ROOT), "PACEKEEPER_WEBHOOK_SECRET": "k" * 32}
    passed = subprocess.run(command, cwd=tmp_path, env=good, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    for name in ("api", "worker", "monitor"):
        assert SERVICES[name]["depends_on"]["check"] == {
            "condition": "service_completed_successfully"
        }


def test_published_ports_are_loopback_only() -> None:
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert interpolate(port).startswith("127.0.0.1:"), name


# -- the Dockerfile -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_dockerfile_is_slim_non_root_with_a_python_healthcheck() -> None:
    instructions = dockerfile_instructions()
    assert all(rest.startswith("python:3.11-slim") for k, rest in instructions if k == "FROM")
    stage = final_stage()
    users = [rest for k, rest in stage if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    (entrypoint,) = [json.loads(rest) for k, rest in stage if k == "ENTRYPOINT"]
    assert entrypoint == ["pacekeeper"]
    (check,) = [rest for k, rest in stage if k == "HEALTHCHECK"]
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command[:3] == ["python", "-m", "app.healthcheck"]
    healthcheck.build_parser().parse_args(command[3:])
    (default,) = [json.loads(rest) for k, rest in stage if k == "CMD"]
    build_parser().parse_args(default)
    assert "curl" not in (ROOT / "Dockerfile").read_text().split("HEALTHCHECK")[1]


def test_dockerfile_copies_what_exists_and_dockerignore_keeps_it() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert source not in ignored
    assert {".venv", ".env", ".git"} <= ignored


# -- the commands compose runs, run here ----------------------------------------------------


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        app_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACEKEEPER_")}
    env.update(extra)
    return env


def test_migrate_command_upgrades_a_fresh_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'compose.db'}"
    result = run_cli(SERVICES["migrate"]["command"], base_env(PACEKEEPER_DATABASE_URL=url))
    assert result.returncode == 0, result.stderr
    engine = create_engine(url)
    try:
        assert {"alembic_version", "signals", "orders"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_command_upgrades_postgresql_like_compose() -> None:
    from tests.conftest import PG_ADMIN_URL, _pg_available, service_missing

    if not _pg_available():
        service_missing("PostgreSQL is not reachable")
    name = f"pk_compose_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        assert (
            make_url(url).drivername
            == make_url(service_env("migrate")["PACEKEEPER_DATABASE_URL"]).drivername
        )
        result = run_cli(SERVICES["migrate"]["command"], base_env(PACEKEEPER_DATABASE_URL=url))
        assert result.returncode == 0, result.stderr
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[tuple[Supervisor, dict[str, str], io.StringIO]]:
    out = io.StringIO()
    supervisor = Supervisor(out=out, stop_timeout=10)
    private = PrivateRedis()
    try:
        url = private.start(supervisor)
        env = base_env(
            PACEKEEPER_REDIS_URL=url,
            PACEKEEPER_QUEUE_NAME=f"pk-compose-{uuid.uuid4().hex[:8]}",
            PACEKEEPER_DATABASE_URL=f"sqlite:///{tmp_path / 'stack.db'}",
            PACEKEEPER_WEBHOOK_SECRET="compose-test-secret-0123456789abcdef",
            PACEKEEPER_ADMIN_TOKEN="compose-test-admin-0123456789abcdef",
            PACEKEEPER_API_PORT=str(free_port()),
            PACEKEEPER_PAPER_PORT=str(free_port()),
            PACEKEEPER_MONITOR_INTERVAL="1",
        )
        assert run_cli(["db", "upgrade"], env).returncode == 0
        yield supervisor, env, out
    finally:
        supervisor.stop()
        private.cleanup()


def health(role: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The service's compose healthcheck command, as compose runs it."""
    test = SERVICES[role]["healthcheck"]["test"]
    return subprocess.run(
        [sys.executable, *test[2:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.slow
def test_worker_service_command_passes_its_healthcheck(
    stack_env: tuple[Supervisor, dict[str, str], io.StringIO],
) -> None:
    supervisor, env, out = stack_env
    assert health("worker", env).returncode == 1
    (child,) = supervisor.start(
        ChildSpec("worker", app_command(*SERVICES["worker"]["command"]), env)
    )
    wait_until(
        lambda: health("worker", env).returncode == 0 or child.proc.poll() is not None, timeout=60
    )
    assert child.proc.poll() is None, out.getvalue()
    # `docker stop` (SIGTERM) ends an idle worker cleanly and at once: its pub/sub listener
    # used to hold it for up to 60 s, as long as compose's stop_grace_period (worker/main.py).
    child.proc.send_signal(signal.SIGTERM)
    assert child.proc.wait(timeout=30) == 0, out.getvalue()
    assert "unsubscribing" in out.getvalue()


@pytest.mark.slow
def test_monitor_service_command_registers_its_scheduler(
    stack_env: tuple[Supervisor, dict[str, str], io.StringIO],
) -> None:
    supervisor, env, out = stack_env
    (child,) = supervisor.start(
        ChildSpec("monitor", app_command(*SERVICES["monitor"]["command"]), env)
    )

    def scheduler_up() -> bool:
        assert child.proc.poll() is None, out.getvalue()
        return "ok cron:" in health("monitor", env).stdout

    wait_until(scheduler_up, timeout=60)


@pytest.mark.slow
def test_paper_service_command_passes_its_healthcheck(
    stack_env: tuple[Supervisor, dict[str, str], io.StringIO],
) -> None:
    supervisor, env, out = stack_env
    command = [*SERVICES["paper"]["command"][:1], "--host", "127.0.0.1"]
    (child,) = supervisor.start(ChildSpec("paper", app_command(*command), env))
    wait_until(
        lambda: health("paper", env).returncode == 0 or child.proc.poll() is not None, timeout=60
    )
    assert child.proc.poll() is None, out.getvalue()


@pytest.mark.slow
def test_api_service_command_passes_its_liveness_check(
    stack_env: tuple[Supervisor, dict[str, str], io.StringIO],
) -> None:
    supervisor, env, out = stack_env
    command = [*SERVICES["api"]["command"][:1], "--host", "127.0.0.1"]
    (child,) = supervisor.start(ChildSpec("api", app_command(*command), env))
    check = [sys.executable, "-m", "app.healthcheck", "api"]  # the Dockerfile's liveness check

    def alive() -> bool:
        assert child.proc.poll() is None, out.getvalue()
        return (
            subprocess.run(check, cwd=ROOT, env=env, capture_output=True, timeout=30).returncode
            == 0
        )

    wait_until(alive, timeout=60)
