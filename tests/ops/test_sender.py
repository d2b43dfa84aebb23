"""`pacekeeper send`: posts a JSON signal to a real HTTP server that checks the signature."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import cli
from app.config import Settings, get_settings
from app.sender import send_main
from app.signals import security
from tests.ops.stubs import verifying_app
from tests.support import ThreadedServer, serve

SECRET = "sender-test-secret-0123456789abcdef"
SIGNAL = {
    "id": "tv-42-BTCUSDT-entry",
    "action": "entry",
    "symbol": "BTCUSDT",
    "market": "spot",
    "side": "buy",
    "quantity": "0.5",
    "execution": {"type": "market"},
}


@pytest.fixture
def receiver() -> Iterator[tuple[ThreadedServer, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    with serve(verifying_app(SECRET, received)) as server:
        yield server, received


def settings_with(secret: str) -> Settings:
    return Settings(_env_file=None, webhook_secret=secret)


def run_send(file: str, url: str, secret: str = SECRET, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = send_main(
        argparse.Namespace(file=file, url=url),
        settings_with(secret),
        stdin=io.StringIO(stdin),
        out=out,
        err=err,
    )
    return code, out.getvalue(), err.getvalue()


def test_send_file_signs_and_prints_the_answer(
    receiver: tuple[ThreadedServer, list[dict[str, Any]]], tmp_path: Path
) -> None:
    server, received = receiver
    path = tmp_path / "signal.json"
    path.write_text(json.dumps(SIGNAL, indent=2) + "\n")
    code, out, _ = run_send(str(path), server.url)
    assert code == 0
    assert "HTTP 202" in out
    assert '"signal_id": "s-1"' in out
    assert received == [{"body": SIGNAL, "content_type": "application/json"}]


def test_send_reads_standard_input(
    receiver: tuple[ThreadedServer, list[dict[str, Any]]],
) -> None:
    server, received = receiver
    code, _, _ = run_send("-", server.url, stdin=json.dumps(SIGNAL))
    assert code == 0
    assert received[0]["body"] == SIGNAL


def test_wrong_secret_is_refused_and_exits_non_zero(
    receiver: tuple[ThreadedServer, list[dict[str, Any]]],
) -> None:
    server, received = receiver
    code, out, _ = run_send("-", server.url, secret="another-secret-0123456789", stdin="{}")
    assert code == 1
    assert "HTTP 401" in out
    assert received == []


def test_invalid_json_is_not_sent(receiver: tuple[ThreadedServer, list[dict[str, Any]]]) -> None:
    server, received = receiver
    code, _, err = run_send("-", server.url, stdin='{"secret": "abc", "id": ')
    assert code == 2
    assert "not valid JSON" in err
    assert "abc" not in err
    assert received == []


def test_missing_file_and_non_object_are_usage_errors(tmp_path: Path) -> None:
    code, _, err = run_send(str(tmp_path / "nope.json"), "http://127.0.0.1:9")
    assert code == 2 and "cannot read" in err
    code, _, err = run_send("-", "http://127.0.0.1:9", stdin="[1, 2]")
    assert code == 2 and "JSON object" in err


def test_unreachable_receiver_exits_non_zero() -> None:
    from tests.support import free_port

    code, _, err = run_send("-", f"http://127.0.0.1:{free_port()}", stdin="{}")
    assert code == 1
    assert "ConnectError" in err


def test_cli_send_uses_the_secret_from_the_environment(
    receiver: tuple[ThreadedServer, list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, received = receiver
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("PACEKEEPER_WEBHOOK_SECRET", SECRET)
    get_settings.cache_clear()
    try:
        (tmp_path / "s.json").write_text(json.dumps(SIGNAL))
        assert cli.main(["send", "s.json", "--url", server.url]) == 0
    finally:
        get_settings.cache_clear()
    assert received[0]["body"] == SIGNAL
    assert SECRET not in capsys.readouterr().out


def test_without_a_configured_secret_only_a_body_secret_will_do(
    receiver: tuple[ThreadedServer, list[dict[str, Any]]],
) -> None:
    server, received = receiver
    code, _, err = run_send("-", server.url, secret="", stdin=json.dumps(SIGNAL))
    assert code == 2
    assert "PACEKEEPER_WEBHOOK_SECRET" in err
    code, out, _ = run_send("-", server.url, secret="", stdin=json.dumps({**SIGNAL, "secret": "x"}))
    assert code == 1 and "HTTP 401" in out  # sent unsigned; this stand-in wants a signature
    assert received == []


def test_signature_matches_the_receivers_verification() -> None:
    from app.sender import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

    body = json.dumps(SIGNAL).encode()
    assert signature(body, SECRET, 1_732_190_000) == security.sign(SECRET, 1_732_190_000, body)
    assert security.TIMESTAMP_HEADER.lower() == TIMESTAMP_HEADER.lower()
    assert security.SIGNATURE_HEADER.lower() == SIGNATURE_HEADER.lower()
