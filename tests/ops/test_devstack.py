"""The dev-stack supervisor, the private redis-server and `pacekeeper dev` with stub children."""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from app.config import Settings
from app.devstack import ChildSpec, DevStack, PrivateRedis, Supervisor, redis_answers
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

pytestmark = pytest.mark.slow


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


SLEEPER = py("import time; print('up', flush=True); time.sleep(60)")


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def supervisor(out: io.StringIO) -> Iterator[Supervisor]:
    sup = Supervisor(out=out, stop_timeout=5)
    yield sup
    sup.stop()


def test_children_output_is_prefixed_with_their_name(
    supervisor: Supervisor, out: io.StringIO
) -> None:
    supervisor.start(
        ChildSpec("alpha", py("print('hello from a', flush=True); import time; time.sleep(60)")),
        ChildSpec("beta", py("import sys; print('oops', file=sys.stderr, flush=True); input()")),
    )
    wait_until(lambda: "hello from a" in out.getvalue() and "oops" in out.getvalue())
    assert "alpha   | hello from a\n" in out.getvalue()
    assert "beta    | oops\n" in out.getvalue()


def test_stop_sends_sigterm_and_children_exit_cleanly(
    supervisor: Supervisor, out: io.StringIO
) -> None:
    code = """
        import signal, sys, time
        def bye(*_):
            print('got SIGTERM', flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print('up', flush=True)
        time.sleep(60)
    """
    (child,) = supervisor.start(ChildSpec("polite", py(code)))
    wait_until(lambda: "up" in out.getvalue())
    supervisor.stop()
    assert child.proc.returncode == 0
    assert "polite  | got SIGTERM" in out.getvalue()


def test_a_child_that_ignores_sigterm_is_killed_with_its_process_group(out: io.StringIO) -> None:
    code = f"""
        import signal, subprocess, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])
        print('grandchild', grandchild.pid, flush=True)
        time.sleep(60)
    """
    sup = Supervisor(out=out, stop_timeout=0.5)
    (child,) = sup.start(ChildSpec("stubborn", py(code)))
    match = wait_until(lambda: re.search(r"grandchild (\d+)", out.getvalue()))
    grandchild = int(match.group(1))
    sup.stop()
    assert child.proc.returncode == -signal.SIGKILL
    assert "stubborn did not stop in time; killing it" in out.getvalue()
    wait_until(lambda: not alive(grandchild))


def test_a_dying_child_stops_the_rest_and_the_exit_code_says_so(
    supervisor: Supervisor, out: io.StringIO
) -> None:
    (long_lived,) = supervisor.start(ChildSpec("api", SLEEPER))
    supervisor.start(ChildSpec("worker", py("print('crashing', flush=True); raise SystemExit(3)")))
    assert supervisor.wait() == 3
    assert "worker  | crashing" in out.getvalue()
    assert "worker exited with code 3; stopping the others" in out.getvalue()
    supervisor.stop()
    assert long_lived.proc.returncode is not None
    assert not alive(long_lived.proc.pid)


def test_a_child_that_may_be_restarted_is_started_again_when_it_dies(
    supervisor: Supervisor, out: io.StringIO, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-once"
    code = f"""
        import pathlib, sys, time
        marker = pathlib.Path({str(marker)!r})
        if not marker.exists():
            marker.touch()
            print('dying', flush=True)
            sys.exit(3)
        print('back', flush=True)
        time.sleep(60)
    """
    supervisor.start(ChildSpec("api", SLEEPER), ChildSpec("worker", py(code), restart=True))

    def restarted() -> bool:
        assert supervisor.check() is None  # nothing has died for good
        return "worker  | back" in out.getvalue()

    wait_until(restarted, timeout=30)
    assert "worker exited with code 3; starting it again in 0.5 s" in out.getvalue()
    assert supervisor.restarts == {"worker": 1}
    assert all(child.proc.poll() is None for child in supervisor.children)


def test_a_configuration_error_is_not_restarted_and_stops_the_rest(
    supervisor: Supervisor, out: io.StringIO
) -> None:
    supervisor.start(ChildSpec("api", SLEEPER))
    supervisor.start(ChildSpec("worker", py("raise SystemExit(78)"), restart=True))
    assert supervisor.wait() == 78
    assert "worker exited with code 78; stopping the others" in out.getvalue()
    assert supervisor.restarts == {}


def test_a_child_exiting_zero_is_still_a_failure(supervisor: Supervisor) -> None:
    supervisor.start(ChildSpec("api", SLEEPER), ChildSpec("monitor", py("pass")))
    assert supervisor.wait() == 1


def test_request_stop_makes_wait_return_zero(supervisor: Supervisor) -> None:
    supervisor.start(ChildSpec("api", SLEEPER))
    threading.Timer(0.2, supervisor.request_stop).start()
    assert supervisor.wait() == 0


def test_layers_stop_in_reverse_order(supervisor: Supervisor, out: io.StringIO) -> None:
    code = """
        import signal, sys, time
        def bye(*_):
            print('stopping', flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print('up', flush=True)
        time.sleep(60)
    """
    supervisor.start(ChildSpec("first", py(code)))
    supervisor.start(ChildSpec("second", py(code)))
    wait_until(lambda: out.getvalue().count("| up") == 2)
    supervisor.stop()
    text = out.getvalue()
    assert text.index("second  | stopping") < text.index("first   | stopping")


SUPERVISED_SCRIPT = f"""
import sys
from app.devstack import ChildSpec, Supervisor
sup = Supervisor(stop_timeout=5)
sup.install_signal_handlers()
children = sup.start(
    ChildSpec("a", [{PY!r}, "-c", "import time; time.sleep(60)"]),
    ChildSpec("b", [{PY!r}, "-c", "import time; time.sleep(60)"]),
)
print("pids", *(c.proc.pid for c in children), flush=True)
code = sup.wait()
sup.stop()
print("codes", *(c.proc.returncode for c in children), flush=True)
sys.exit(code)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_every_child(signum: int) -> None:
    proc = subprocess.Popen(
        [PY, "-c", SUPERVISED_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first[0] == "pids"
    pids = [int(p) for p in first[1:]]
    assert all(alive(pid) for pid in pids)
    proc.send_signal(signum)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert rest.split() == ["codes", f"-{int(signal.SIGTERM)}", f"-{int(signal.SIGTERM)}"]
    assert not any(alive(pid) for pid in pids)


def test_private_redis_runs_on_a_free_port_without_persistence(supervisor: Supervisor) -> None:
    private = PrivateRedis()
    url = private.start(supervisor)
    assert private.port != 6379
    assert url == f"redis://127.0.0.1:{private.port}/0"
    conn = redis.Redis.from_url(url)
    try:
        config = {k: conn.config_get(k)[k] for k in ("appendonly", "save", "dir", "bind")}
    finally:
        conn.close()
    assert config["appendonly"] == "no"
    assert config["save"] == ""
    assert config["bind"] == "127.0.0.1"
    assert private.dir is not None and config["dir"] is not None
    assert os.path.realpath(config["dir"]) == os.path.realpath(private.dir)
    directory = private.dir
    supervisor.stop()
    private.cleanup()
    assert private.child is not None and private.child.proc.returncode is not None
    assert not redis_answers(url, timeout=0.5)
    assert not Path(directory).exists()


# -- pacekeeper dev, with stub children --------------------------------------------------


def dev_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, Any] = {
        "redis_url": None,  # unset: the stack starts its own redis-server
        "database_url": f"sqlite:///{tmp_path / 'dev.db'}",
        "api_port": free_port(),
        "paper_port": free_port(),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACEKEEPER_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


WORKER_STUB = py(
    """
    import os, time, redis
    redis.Redis.from_url(os.environ['PACEKEEPER_REDIS_URL']).ping()
    print('worker reached redis', flush=True)
    time.sleep(60)
    """
)


def stub_commands(**overrides: list[str]) -> dict[str, list[str]]:
    commands = {
        "paper": [PY, "-m", "tests.ops.stubs", "paper"],
        "api": [PY, "-m", "tests.ops.stubs", "api"],
        "worker": WORKER_STUB,
        "monitor": SLEEPER,
    }
    commands.update(overrides)
    return commands


def run_in_thread(stack: DevStack) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(stack.run()), daemon=True)
    thread.start()
    return thread, result


def wait_for_banner(out: io.StringIO, thread: threading.Thread) -> str:
    def shown() -> bool:
        if not thread.is_alive():
            raise AssertionError(f"the stack exited before it was ready:\n{out.getvalue()}")
        return "Send a signal" in out.getvalue()

    wait_until(shown, timeout=60)
    return out.getvalue()


def banner_command(output: str, marker: str) -> str:
    """A ready-to-run command the banner printed, exactly as printed."""
    return next(line for line in output.splitlines() if marker in line)


def test_dev_stack_runs_everything_and_its_example_signal_is_accepted(tmp_path: Path) -> None:
    out = io.StringIO()
    settings = dev_settings(tmp_path)
    stack = DevStack(
        settings,
        out=out,
        commands=stub_commands(),
        env=child_env(),
        state_dir=tmp_path / "var",
        stop_timeout=5,
    )
    thread, result = run_in_thread(stack)
    try:
        wait_for_banner(out, thread)
        wait_until(lambda: "worker reached redis" in out.getvalue())
        text = out.getvalue()
        assert stack.redis is not None
        private_url = stack.redis.url
        assert f"redis {private_url} (private to this run" in text
        assert "paper   | paper stub: redis=" + private_url in text
        assert f"receiver        http://127.0.0.1:{settings.api_port}" in text
        generated = stack.generated["webhook secret"]
        assert f"webhook secret  {generated}" in text
        settings.model_copy(update={"webhook_secret": SecretStr(generated)}).check_webhook_secret()
        assert "admin token" in stack.generated

        # The printed command works as printed, from a directory with no .env.
        sent = subprocess.run(
            ["bash", "-c", banner_command(text, " send --url ")],
            cwd=tmp_path,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "HTTP 202" in sent.stdout
        wait_until(lambda: "api     | received signal dev-example-" in out.getvalue())
        curl = subprocess.run(
            ["bash", "-c", banner_command(text, "curl -sS -X POST")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert curl.returncode == 0
        assert '"status":"queued"' in curl.stdout
        wait_until(
            lambda: re.search(r"api     \| received signal dev-example-\d+-tv\n", out.getvalue())
        )
    finally:
        stack.request_stop()
        thread.join(timeout=60)
    assert result == [0]
    assert all(child.proc.returncode is not None for child in stack.supervisor.children)
    assert not redis_answers(private_url, timeout=0.5)
    # `db upgrade` ran first, on the configured database.
    engine = create_engine(settings.database_url)
    try:
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_dev_stack_restarts_a_part_that_dies_and_its_private_redis(tmp_path: Path) -> None:
    out = io.StringIO()
    marker = tmp_path / "worker-ran"
    worker = py(
        f"""
        import pathlib, sys, time
        marker = pathlib.Path({str(marker)!r})
        if not marker.exists():
            marker.touch()
            sys.exit(5)
        print('worker is back', flush=True)
        time.sleep(60)
        """
    )
    stack = DevStack(
        dev_settings(tmp_path),
        out=out,
        commands=stub_commands(worker=worker),
        env=child_env(),
        state_dir=tmp_path / "var",
        stop_timeout=5,
    )
    thread, result = run_in_thread(stack)
    try:
        wait_for_banner(out, thread)
        wait_until(lambda: "worker  | worker is back" in out.getvalue(), timeout=30)
        assert "worker exited with code 5; starting it again" in out.getvalue()
        # The private redis-server crashes: it comes back on the same port.
        assert stack.redis is not None
        url = stack.redis.url
        stack.redis.kill()
        wait_until(lambda: stack.supervisor.restarts.get("redis") == 1, timeout=30)
        wait_until(lambda: redis_answers(url, timeout=0.5), timeout=30)
        assert thread.is_alive()
    finally:
        stack.request_stop()
        thread.join(timeout=60)
    assert result == [0]
    assert all(child.proc.returncode is not None for child in stack.supervisor.children)


def test_dev_stack_stops_everything_on_a_configuration_error(tmp_path: Path) -> None:
    out = io.StringIO()
    commands = stub_commands(worker=py("import time; time.sleep(0.5); raise SystemExit(78)"))
    stack = DevStack(
        dev_settings(tmp_path),
        out=out,
        commands=commands,
        env=child_env(),
        state_dir=tmp_path / "var",
        stop_timeout=5,
    )
    assert stack.run() == 78
    assert "worker exited with code 78; stopping the others" in out.getvalue()
    assert all(child.proc.returncode is not None for child in stack.supervisor.children)
    assert stack.redis is not None and stack.redis.dir is None
    assert not redis_answers(stack.redis.url, timeout=0.5)


def test_a_configured_redis_that_does_not_answer_stops_the_start(tmp_path: Path) -> None:
    out = io.StringIO()
    settings = dev_settings(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    stack = DevStack(
        settings, out=out, commands=stub_commands(), env=child_env(), state_dir=tmp_path / "var"
    )
    assert stack.run() == 2
    assert "does not answer" in out.getvalue()
    assert stack.supervisor.children == []


def test_a_configured_webhook_secret_is_used_and_never_printed(tmp_path: Path) -> None:
    out = io.StringIO()
    secret = "configured-secret-0123456789abcdef"
    settings = dev_settings(tmp_path, webhook_secret=secret, admin_token="admin-0123456789abcdef")
    stack = DevStack(
        settings,
        out=out,
        commands=stub_commands(),
        env=child_env(),
        state_dir=tmp_path / "var",
        stop_timeout=5,
    )
    thread, result = run_in_thread(stack)
    try:
        wait_for_banner(out, thread)
    finally:
        stack.request_stop()
        thread.join(timeout=60)
    assert result == [0]
    assert stack.generated == {}
    assert secret not in out.getvalue()
    assert "<your PACEKEEPER_WEBHOOK_SECRET>" in out.getvalue()


def test_a_busy_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    import socket

    out = io.StringIO()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        settings = dev_settings(tmp_path, api_port=holder.getsockname()[1])
        stack = DevStack(
            settings, out=out, commands=stub_commands(), env=child_env(), state_dir=tmp_path / "var"
        )
        assert stack.run() == 2
    assert "is in use; stop what holds it or set PACEKEEPER_API_PORT" in out.getvalue()
    assert stack.supervisor.children == []


@contextmanager
def banner_shown(
    tmp_path: Path, settings: Settings, out: io.StringIO | None = None, **options: Any
) -> Iterator[tuple[DevStack, io.StringIO]]:
    """A stack with stub parts, up to its banner; stopped (cleanly) when the block ends."""
    out = out if out is not None else io.StringIO()
    options.setdefault("commands", stub_commands())
    stack = DevStack(settings, out=out, env=child_env(), state_dir=tmp_path / "var",
                     stop_timeout=5, **options)  # fmt: skip
    thread, result = run_in_thread(stack)
    try:
        wait_for_banner(out, thread)
        yield stack, out
    finally:
        stack.request_stop()
        thread.join(timeout=60)
    assert result == [0]


def test_a_generated_secret_and_token_are_kept_for_the_next_run(tmp_path: Path) -> None:
    """A restart of `make dev` keeps the secret TradingView and the dashboard were given."""
    runs: list[dict[str, str]] = []
    for _ in range(2):
        with banner_shown(tmp_path, dev_settings(tmp_path)) as (stack, out):
            runs.append(dict(stack.generated))
        assert f"kept in {tmp_path / 'var' / 'dev-secrets.json'}" in out.getvalue()
    assert set(runs[0]) == {"webhook secret", "admin token"}
    assert runs[0] == runs[1]
    kept = tmp_path / "var" / "dev-secrets.json"
    assert kept.stat().st_mode & 0o777 == 0o600


def test_the_default_dev_database_starts_empty_with_the_paper_exchange(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded paper exchange starts empty; so does the default database (./var), or it
    would list working algos the exchange no longer knows. A configured one is kept."""
    monkeypatch.chdir(tmp_path)
    stale = tmp_path / "var" / "pacekeeper.db"
    stale.parent.mkdir()
    with sqlite3.connect(stale) as conn:
        conn.execute("CREATE TABLE stale (x)")
    for name in ("DATABASE_URL", "BINANCE_API_URL", "BINANCE_FAPI_URL"):
        monkeypatch.delenv(f"PACEKEEPER_{name}", raising=False)
    # The default database, ./var/pacekeeper.db, and the embedded paper exchange.
    settings = Settings(_env_file=None, redis_url=None, api_port=free_port(),
                        paper_port=free_port())  # fmt: skip
    with banner_shown(tmp_path, settings) as (_, out):
        pass
    assert "emptied, as the paper exchange starts empty" in out.getvalue()
    with sqlite3.connect(stale) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "stale" not in tables and "signals" in tables  # new, and migrated

    # A configured database is never emptied.
    configured = dev_settings(tmp_path)
    kept = make_url(configured.database_url).database
    assert kept is not None
    with sqlite3.connect(kept) as conn:
        conn.execute("CREATE TABLE mine (x)")
    with banner_shown(tmp_path, configured):
        pass
    with sqlite3.connect(kept) as conn:
        assert "mine" in {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_parts_log_text_quiet_keeps_warnings_and_enter_reprints_the_banner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LOG_JSON", "LOG_LEVEL"):
        monkeypatch.delenv(f"PACEKEEPER_{name}", raising=False)
    shows = py(
        """
        import os, time
        print('json=' + os.environ.get('PACEKEEPER_LOG_JSON', '-')
              + ' level=' + os.environ.get('PACEKEEPER_LOG_LEVEL', '-'), flush=True)
        time.sleep(60)
        """
    )
    read, write = os.pipe()
    with os.fdopen(read) as keys, os.fdopen(write, "w") as enter:
        settings, commands = dev_settings(tmp_path), stub_commands(monitor=shows)
        with banner_shown(tmp_path, settings, Terminal(), commands=commands, quiet=True,
                          keys=keys) as (_, out):  # fmt: skip
            wait_until(lambda: "json=false level=WARNING" in out.getvalue(), timeout=30)
            assert out.getvalue().count("Send a signal") == 1
            enter.write("\n")
            enter.flush()
            wait_until(lambda: out.getvalue().count("Send a signal") == 2, timeout=10)


def test_away_from_a_terminal_the_parts_keep_json_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACEKEEPER_LOG_JSON", raising=False)
    shows = py(
        """
        import os, time
        print('json=' + os.environ.get('PACEKEEPER_LOG_JSON', '-'), flush=True)
        time.sleep(60)
        """
    )
    commands = stub_commands(monitor=shows)
    with banner_shown(tmp_path, dev_settings(tmp_path), commands=commands) as (_, out):
        wait_until(lambda: "json=" in out.getvalue(), timeout=30)
    assert "json=-" in out.getvalue()  # the default: JSON lines for a file or a collector
