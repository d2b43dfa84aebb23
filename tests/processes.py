"""Real ``pacekeeper`` processes for tests: started with an environment of their own, their
output collected line by line, waited on by condition (never by a fixed sleep)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[1]


def process_env(**settings: str) -> dict[str, str]:
    """This environment without any PACEKEEPER_ setting, plus ``settings`` (names without
    the prefix, e.g. ``REDIS_URL``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACEKEEPER_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "PACEKEEPER_ENV": "test",
            "PACEKEEPER_LOG_JSON": "false",
        }
    )
    env.update({f"PACEKEEPER_{name}": value for name, value in settings.items()})
    return env


class Process:
    """``python -m app.cli <args>``, killed by pid when the test ends."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        self.args = args
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=dict(env),
            cwd=str(cwd or ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def count(self, text: str) -> int:
        with self._lock:
            return sum(text in line for line in self.lines)

    def wait_for(self, text: str, *, times: int = 1, timeout: float = 30.0) -> None:
        """Until ``text`` has appeared in ``times`` lines; fails early if the process exits."""

        def seen() -> bool:
            if self.count(text) >= times:
                return True
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.args[0]} exited ({self.proc.returncode}) before {text!r}:\n"
                    + self.output[-4000:]
                )
            return False

        try:
            wait_until(seen, timeout=timeout)
        except AssertionError as exc:
            tail = self.output[-4000:]
            raise AssertionError(f"{exc}\n--- {self.args[0]} output ---\n{tail}") from None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit code (SIGKILL if it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.lines.append(f"[killed: did not stop within {timeout} s of SIGTERM]")
        self._close_output()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_output()

    def _close_output(self) -> None:
        """The pipe is closed once the reader has read it to its end (a pipe left open is a
        ResourceWarning at some later test's garbage collection)."""
        self._reader.join(timeout=5)
        if not self._reader.is_alive() and self.proc.stdout is not None:
            self.proc.stdout.close()
        self._reader.join(timeout=5)
