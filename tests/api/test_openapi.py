"""The answers the framework gives by itself (no such path, a method the path does not take, a
body that is not JSON) come in the same shape as ours."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import AUTH


def test_a_method_the_path_does_not_take_gets_405_naming_every_one_it_does(
    api: TestClient,
) -> None:
    answer = api.put("/api/halt", headers=AUTH)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"  # Starlette named only the first route's
    assert answer.json() == {"error": "method_not_allowed", "message": "method not allowed"}
    assert api.delete("/webhook").headers["allow"] == "POST"


def test_no_such_path_answers_in_our_shape(api: TestClient) -> None:
    answer = api.get("/api/nothing-here", headers=AUTH)
    assert answer.status_code == 404
    assert answer.json() == {"error": "not_found", "message": "not found"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"reason": "x",', "not valid JSON: Expecting"),
        (b'{"reason": "\xff"}', "not valid JSON: not UTF-8"),  # FastAPI answered 400
    ],
)
def test_a_body_that_is_not_json_is_refused_naming_the_body(
    api: TestClient, body: bytes, message: str
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    for path in ("/api/halt", "/api/algos/1/cancel"):
        answer = api.post(path, content=body, headers=headers)
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["errors"]
        assert error["field"] == "body"  # the position went where the field name goes
        assert error["message"].startswith(message)
        assert error["value"] is None
    assert api.get("/api/halt", headers=AUTH).json()["halted"] is False
