"""``pacekeeper dev``: paper exchange, receiver, worker and monitor on one machine.

:class:`Supervisor` runs child processes with their output prefixed by name, stops them
in reverse order of start (SIGTERM, then SIGKILL after a timeout), starts a child that
dies again when its spec says so (after a pause doubling up to 30 s; never one that
exited with the configuration-error code, ``app.outages.CONFIG_ERROR``) and reports the
first one that dies for good. :class:`PrivateRedis` is a throw-away redis-server on a free
port in a temporary directory, with no persistence, for when no Redis is configured or
running. :func:`run_dev` puts them together: one dead part no longer stops the stack (the
others ride out its absence, ``app.outages``), it is started again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

import httpx
import redis
from sqlalchemy.engine import make_url

from app.config import Settings, get_settings
from app.logging import redact
from app.outages import CONFIG_ERROR

STOP_TIMEOUT = 10.0
READY_TIMEOUT = 30.0
# A child that dies is started again after RESTART_PAUSE, doubling to RESTART_MAX_PAUSE;
# one that ran longer than RESTART_RESET before dying starts from the short pause again.
RESTART_PAUSE = 0.5
RESTART_MAX_PAUSE = 30.0
RESTART_RESET = 60.0


@dataclass
class ChildSpec:
    """A process to supervise: a name for its output prefix, a command line, environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    # Start it again when it dies (not when it exits with CONFIG_ERROR).
    restart: bool = False


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[str]
    reader: threading.Thread = field(repr=False)
    started: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.spec.name


class Supervisor:
    """Runs children, prefixes their output, restarts those that may be, and stops them all
    when one dies for good or on request."""

    def __init__(
        self, *, out: TextIO | None = None, stop_timeout: float = STOP_TIMEOUT, width: int = 8
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.stop_timeout = stop_timeout
        self.width = width
        self.layers: list[list[Child]] = []
        self.failed: Child | None = None
        self.restarts: dict[str, int] = {}  # name -> how many times it was started again
        self._due: dict[int, float] = {}  # id(dead child) -> when to start it again
        self._pauses: dict[str, float] = {}  # name -> the pause before its next restart
        self._stop_requested = threading.Event()
        self._force = False
        self._lock = threading.Lock()

    # -- output -------------------------------------------------------------------------
    def say(self, line: str, name: str | None = "dev") -> None:
        """Write one line with a name prefix (none if None), never inside a child's line."""
        prefix = "" if name is None else f"{name:<{self.width}}| "
        # A child's last lines may come after its output was closed: they have nowhere to go.
        with self._lock, contextlib.suppress(ValueError):
            self.out.write(f"{prefix}{line.rstrip()}\n")
            self.out.flush()

    def _pump(self, name: str, stream: TextIO) -> None:
        for line in stream:
            self.say(line, name)
        stream.close()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, *specs: ChildSpec) -> list[Child]:
        """Start ``specs`` as one layer; layers stop in reverse order of start."""
        layer: list[Child] = []
        self.layers.append(layer)
        for spec in specs:
            layer.append(self._spawn(spec))
        return layer

    def _spawn(self, spec: ChildSpec) -> Child:
        proc = subprocess.Popen(
            list(spec.argv),
            env=dict(spec.env) if spec.env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            # Its own process group: Ctrl-C reaches the supervisor only, which then
            # stops the children in order instead of all at once.
            process_group=0,
        )
        assert proc.stdout is not None
        reader = threading.Thread(target=self._pump, args=(spec.name, proc.stdout), daemon=True)
        reader.start()
        return Child(spec, proc, reader)

    @property
    def children(self) -> list[Child]:
        return [child for layer in self.layers for child in layer]

    def request_stop(self) -> None:
        """Ask :meth:`wait` to return; a second request skips the grace period."""
        if self._stop_requested.is_set():
            self._force = True
        self._stop_requested.set()

    def install_signal_handlers(self) -> None:
        """Ctrl-C, SIGTERM and SIGHUP stop the stack (only from the main thread)."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.request_stop()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, handler)

    @property
    def stopping(self) -> bool:
        return self._stop_requested.is_set()

    def discard(self, child: Child) -> None:
        """Forget a child that has already exited (a failed start that will be retried)."""
        for layer in self.layers:
            if child in layer:
                layer.remove(child)
        self.layers = [layer for layer in self.layers if layer]

    def check(self) -> Child | None:
        """The first child that has exited and will not be restarted, if any; a child that
        will be is started again once its pause is over."""
        if self.failed is not None or self.stopping:
            return self.failed
        for layer in self.layers:
            for index, child in enumerate(layer):
                code = child.proc.poll()
                if code is None:
                    continue
                if not child.spec.restart or code == CONFIG_ERROR:
                    self.failed = child
                    return child
                due = self._due.get(id(child))
                if due is None:
                    self._schedule(child, code)
                elif time.monotonic() >= due:
                    del self._due[id(child)]
                    layer[index] = self._spawn(child.spec)
                    self.restarts[child.name] = self.restarts.get(child.name, 0) + 1
        return None

    def _schedule(self, child: Child, code: int) -> None:
        if time.monotonic() - child.started > RESTART_RESET:
            self._pauses.pop(child.name, None)  # it ran a good while: a short pause again
        pause = self._pauses.get(child.name, RESTART_PAUSE)
        self._pauses[child.name] = min(RESTART_MAX_PAUSE, pause * 2)
        self._due[id(child)] = time.monotonic() + pause
        child.reader.join(timeout=2)  # its last lines first
        self.say(f"{child.name} exited with code {code}; starting it again in {pause:g} s")

    def wait(self, poll_interval: float = 0.1) -> int:
        """Block until a stop is requested (0) or a child exits (non-zero)."""
        while not self._stop_requested.wait(poll_interval):
            child = self.check()
            if child is not None:
                return self._report_death(child)
        return 0

    def _report_death(self, child: Child) -> int:
        code = child.proc.returncode
        child.reader.join(timeout=2)  # let its last lines out first
        self.say(f"{child.name} exited with code {code}; stopping the others")
        if code is None or code == 0:
            return 1
        return code if code > 0 else 128 - code

    def stop(self) -> None:
        """SIGTERM every running child, layer by layer from the last; SIGKILL after a timeout."""
        for layer in reversed(self.layers):
            running = [c for c in layer if c.proc.poll() is None]
            for child in running:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + (0 if self._force else self.stop_timeout)
            for child in running:
                try:
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.say(f"{child.name} did not stop in time; killing it")
                    # The leader is not reaped yet, so its process group is still ours.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.proc.pid, signal.SIGKILL)
                    child.proc.wait()
        for child in self.children:
            child.reader.join(timeout=2)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    conn = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(conn.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        conn.close()


class PrivateRedis:
    """A redis-server for this run only: 127.0.0.1, a free port, a temp dir; no RDB, and no
    AOF unless ``appendonly`` (``appendfsync everysec``: a crash of the server loses about
    nothing, see the reliability notes). :meth:`restart` brings it back on the same port
    and directory, as a supervisor restarting a crashed server would."""

    def __init__(self, binary: str = "redis-server", *, appendonly: bool = False) -> None:
        self.binary = binary
        self.appendonly = appendonly
        self.port = 0
        self.dir: str | None = None
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def spec(self) -> ChildSpec:
        assert self.dir is not None
        argv = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", self.dir,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        return ChildSpec("redis", argv, restart=True)

    def start(self, supervisor: Supervisor, timeout: float = 10.0, attempts: int = 3) -> str:
        """Start it under ``supervisor`` and wait until it answers; returns its URL."""
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} is not installed; set PACEKEEPER_REDIS_URL")
        self.dir = tempfile.mkdtemp(prefix="pacekeeper-redis-")
        for _ in range(attempts):
            # The port can be taken between picking it and binding it: try another one.
            self.port = free_port()
            (self.child,) = supervisor.start(self.spec())
            deadline = time.monotonic() + timeout
            while self.child.proc.poll() is None and time.monotonic() < deadline:
                if redis_answers(self.url, timeout=0.5):
                    return self.url
                time.sleep(0.05)
            if self.child.proc.poll() is None:
                break
            supervisor.discard(self.child)
        self.cleanup()
        raise RuntimeError("the private redis-server did not start")

    def kill(self) -> None:
        """SIGKILL the server (a crash) and reap it."""
        if self.child is not None and self.child.proc.poll() is None:
            self.child.proc.kill()
            self.child.proc.wait()

    def restart(self, supervisor: Supervisor, timeout: float = 10.0) -> str:
        """Start it again on the same port and directory (after :meth:`kill` or a crash)."""
        if self.child is not None:
            self.kill()
            supervisor.discard(self.child)
        (self.child,) = supervisor.start(self.spec())
        deadline = time.monotonic() + timeout
        while self.child.proc.poll() is None and time.monotonic() < deadline:
            if redis_answers(self.url, timeout=0.5):
                return self.url
            time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start again")

    def cleanup(self) -> None:
        """Remove its directory (after it has stopped)."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# -- the dev stack ----------------------------------------------------------------------


def app_command(*args: str) -> list[str]:
    """A pacekeeper sub-command that works without the console script on PATH."""
    return [sys.executable, "-m", "app.cli", *args]


def default_commands() -> dict[str, list[str]]:
    return {
        "paper": app_command("paper"),
        "api": app_command("api"),
        "worker": app_command("worker"),
        "monitor": app_command("monitor"),
    }


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def example_signal(symbol: str = "BTCUSDT") -> dict[str, object]:
    return {
        "id": f"dev-example-{int(time.time())}",
        "action": "entry",
        "symbol": symbol,
        "market": "spot",
        "side": "buy",
        "quantity": "0.001",
        "execution": {"type": "market"},
        "strategy": "dev-example",
    }


def pacekeeper_executable() -> str:
    script = Path(sys.executable).with_name("pacekeeper")
    return str(script) if script.exists() else f"{sys.executable} -m app.cli"


@dataclass
class DevStack:
    """What ``pacekeeper dev`` runs; ``commands`` and ``probes`` are replaceable for tests."""

    settings: Settings
    out: TextIO = field(default_factory=lambda: sys.stdout)
    commands: dict[str, list[str]] = field(default_factory=default_commands)
    probes: dict[str, str] | None = None
    stop_timeout: float = STOP_TIMEOUT
    ready_timeout: float = READY_TIMEOUT
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # Where what a run generates is kept for the next (the secret and token it made up).
    state_dir: Path = Path("var")
    # Children log warnings and errors only (unless PACEKEEPER_LOG_LEVEL is configured).
    quiet: bool = False
    # Where Enter reprints the banner (a terminal's stdin), None for no such thing.
    keys: TextIO | None = None

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(out=self.out, stop_timeout=self.stop_timeout)
        self.redis: PrivateRedis | None = None
        self.generated: dict[str, str] = {}
        self.webhook_secret = ""
        s = self.settings
        self.api_url = f"http://{_local(s.api_host)}:{s.api_port}"
        self.paper_url = f"http://{_local(s.paper_host)}:{s.paper_port}"
        if self.probes is None:
            self.probes = {
                "paper": f"{self.paper_url}/api/v3/time",
                "api": f"{self.api_url}/health",
            }

    def say(self, line: str = "") -> None:
        self.supervisor.say(line)

    def run(self) -> int:
        try:
            code = self._prepare()
            if code:
                return code
            # A part that dies is started again; only a configuration error stops the stack.
            self.supervisor.start(
                *(
                    ChildSpec(name, argv, self.env, restart=True)
                    for name, argv in self.commands.items()
                )
            )
            if not self._wait_ready():
                return self.supervisor.wait()
            self._banner()
            if self.keys is not None:
                threading.Thread(target=self._banner_on_enter, daemon=True).start()
            return self.supervisor.wait()
        finally:
            self.say("stopping")
            self.supervisor.stop()
            if self.redis is not None:
                self.redis.cleanup()
            self.say("stopped")

    def request_stop(self) -> None:
        self.supervisor.request_stop()

    def _banner_on_enter(self) -> None:
        """The banner scrolls away under the logs: Enter brings it back."""
        assert self.keys is not None
        for _ in self.keys:
            if self.supervisor.stopping:
                return
            self._banner()

    def _terminal(self) -> None:
        """On a terminal, children log readable one-line text rather than JSON (unless
        PACEKEEPER_LOG_JSON is configured); ``quiet`` keeps them to warnings and errors."""
        fields = self.settings.model_fields_set
        if "log_json" not in fields and "PACEKEEPER_LOG_JSON" not in os.environ:
            isatty = getattr(self.out, "isatty", None)
            if isatty is not None and isatty():
                self.env["PACEKEEPER_LOG_JSON"] = "false"
        if self.quiet and "log_level" not in fields and "PACEKEEPER_LOG_LEVEL" not in os.environ:
            self.env["PACEKEEPER_LOG_LEVEL"] = "WARNING"

    def _prepare(self) -> int:
        """Ports, Redis, secrets, venue and schema; non-zero when the stack cannot start."""
        s = self.settings
        busy = [
            (name, port)
            for name, host, port in (
                ("PACEKEEPER_API_PORT", s.api_host, s.api_port),
                ("PACEKEEPER_PAPER_PORT", s.paper_host, s.paper_port),
            )
            if port_in_use(host, port)
        ]
        for name, port in busy:
            self.say(f"port {port} is in use; stop what holds it or set {name}")
        if busy:
            return 2
        if not self._choose_redis():
            return 2
        self._secrets()
        self._venue()
        self._reset_with_the_paper_exchange()
        self._terminal()
        self.env.update(
            PYTHONUNBUFFERED="1",
            PACEKEEPER_DATABASE_URL=s.database_url,
            PACEKEEPER_API_HOST=s.api_host,
            PACEKEEPER_API_PORT=str(s.api_port),
            PACEKEEPER_PAPER_HOST=s.paper_host,
            PACEKEEPER_PAPER_PORT=str(s.paper_port),
        )
        self.say(f"database {redact(s.database_url)}: upgrading the schema")
        result = subprocess.run(
            app_command("db", "upgrade"),
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
        )
        for line in (result.stdout + result.stderr).splitlines():
            self.supervisor.say(line, "db")
        if result.returncode != 0:
            self.say(f"db upgrade failed with code {result.returncode}")
            return result.returncode
        return 0

    def _choose_redis(self) -> bool:
        url = self.settings.redis_url
        if url and "redis_url" in self.settings.model_fields_set:
            if not redis_answers(url):
                self.say(f"PACEKEEPER_REDIS_URL={redact(url)} does not answer")
                return False
            self.say(f"redis {redact(url)} (configured)")
        elif url and redis_answers(url):
            self.say(f"redis {redact(url)} (already running)")
        else:
            self.redis = PrivateRedis()
            try:
                url = self.redis.start(self.supervisor)
            except RuntimeError as exc:
                self.say(str(exc))
                return False
            self.say(f"redis {url} (private to this run, discarded on exit)")
        self.env["PACEKEEPER_REDIS_URL"] = url
        return True

    def _secrets(self) -> None:
        """Generate what the receiver refuses to run without; children see what we see. What
        is generated is kept in ``state_dir`` (owner-only) and reused by the next run, so a
        restart does not change the secret TradingView and the dashboard were given."""
        kept = self._kept_secrets()
        try:
            self.settings.check_webhook_secret()
            self.webhook_secret = self.settings.webhook_secret.get_secret_value()
        except ValueError:
            self.webhook_secret = kept.get("webhook secret") or secrets.token_urlsafe(32)
            self.generated["webhook secret"] = self.webhook_secret
        token = self.settings.admin_token.get_secret_value()
        if not token:
            token = kept.get("admin token") or secrets.token_urlsafe(32)
            self.generated["admin token"] = token
        if self.generated and self.generated != {k: kept.get(k) for k in self.generated}:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                json.dump({**kept, **self.generated}, file)
        self.env["PACEKEEPER_WEBHOOK_SECRET"] = self.webhook_secret
        self.env["PACEKEEPER_ADMIN_TOKEN"] = token

    @property
    def _secrets_path(self) -> Path:
        return self.state_dir / "dev-secrets.json"

    def _kept_secrets(self) -> dict[str, str]:
        try:
            kept = json.loads(self._secrets_path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in kept.items() if isinstance(v, str) and len(v) >= 32}

    def _reset_with_the_paper_exchange(self) -> None:
        """The embedded paper exchange keeps its accounts in memory and starts empty; the
        default dev database starts empty with it, or it would list working algos and
        positions the exchange no longer knows. A configured database is left alone."""
        fields = self.settings.model_fields_set
        venue_is_paper = not {"binance_api_url", "binance_fapi_url"} & fields
        if not venue_is_paper or "database_url" in fields:
            return
        database = make_url(self.settings.database_url).database
        if not database or not os.path.exists(database):
            return
        for path in (database, f"{database}-wal", f"{database}-shm", f"{database}-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        self.say(
            f"database {database}: emptied, as the paper exchange starts empty (set "
            "PACEKEEPER_DATABASE_URL to keep a database across runs)"
        )

    def _venue(self) -> None:
        fields = self.settings.model_fields_set
        for name in ("binance_api_url", "binance_fapi_url"):
            configured = getattr(self.settings, name)
            if name not in fields:
                self.env[f"PACEKEEPER_{name.upper()}"] = self.paper_url
            elif configured.rstrip("/") != self.paper_url:
                self.say(f"PACEKEEPER_{name.upper()}={configured}: orders go there, not to paper")

    def _wait_ready(self) -> bool:
        """Wait until every probe answers; False if a child died meanwhile."""
        pending = dict(self.probes or {})
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(timeout=1.0) as client:
            while pending and time.monotonic() < deadline:
                if self.supervisor.check() is not None or self.supervisor.stopping:
                    return False
                for name, url in list(pending.items()):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(url).status_code < 500:
                            del pending[name]
                time.sleep(0.2)
        for name, url in pending.items():
            self.say(f"{name} is not answering at {url} yet")
        return True

    def _banner(self) -> None:
        s = self.settings
        generated = "webhook secret" in self.generated
        # A configured secret is never echoed: `send` reads it from the environment or .env.
        secret = self.webhook_secret if generated else "<your PACEKEEPER_WEBHOOK_SECRET>"
        send_prefix = f"PACEKEEPER_WEBHOOK_SECRET='{secret}' " if generated else ""
        redis_url = self.env["PACEKEEPER_REDIS_URL"]
        signal_json = json.dumps(example_signal())
        tv_signal = example_signal()
        tv_signal["id"] = f"{tv_signal['id']}-tv"  # a second signal, not a repeat of the first
        tv_body = json.dumps({"secret": secret, **tv_signal})
        lines = [
            "",
            "Pacekeeper is running on the paper exchange. Enter shows this again; Ctrl-C stops "
            "everything.",
            f"  receiver        {self.api_url}  (POST /webhook, /health, /health/ready, /metrics)",
            f"  paper exchange  {self.paper_url}  (Binance REST subset, /paper/... controls)",
            f"  redis           {redact(redis_url)}",
            f"  database        {redact(s.database_url)}",
        ]
        for what, value in self.generated.items():
            lines.append(f"  {what:<15} {value}  (generated, kept in {self._secrets_path})")
        if self.generated:
            lines.append(
                "  set PACEKEEPER_WEBHOOK_SECRET / PACEKEEPER_ADMIN_TOKEN in .env to choose them"
            )
        # Unprefixed and one line each, so they can be copied and pasted as they are.
        lines += [
            "",
            "Send a signal, signed with the webhook secret:",
            f"echo '{signal_json}' | {send_prefix}{pacekeeper_executable()} send "
            f"--url {self.api_url} -",
            "",
            "or the way TradingView does, with the secret in the body:",
            f"curl -sS -X POST {self.api_url}/webhook -H 'Content-Type: application/json' "
            f"-d '{tv_body}'",
            "",
        ]
        for line in lines:
            self.supervisor.say(line, None)


def run_dev(settings: Settings | None = None, *, quiet: bool = False) -> int:
    """``pacekeeper dev``: run the whole stack until Ctrl-C (or a configuration error)."""
    keys = sys.stdin if sys.stdin is not None and sys.stdin.isatty() else None
    stack = DevStack(settings or get_settings(), quiet=quiet, keys=keys)
    if threading.current_thread() is threading.main_thread():
        stack.supervisor.install_signal_handlers()
    return stack.run()
