"""The OpenAPI document tells the truth about the answers, and the answers the framework gives
by itself (no such path, a method the path does not take, a body that is not JSON) come in the
same shape as ours. Each of these was a finding of tests/api/test_schema_fuzz.py."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import AUTH


def responses(api: TestClient, method: str, path: str) -> dict[str, Any]:
    document = api.get("/openapi.json").json()
    found: dict[str, Any] = document["paths"][path][method.lower()]["responses"]
    return found


def schema_name(response: dict[str, Any]) -> str:
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("method", "path", "errors"),
    [
        ("GET", "/api/signals", {401, 422}),
        ("GET", "/api/signals/{signal_id}", {401, 404, 422}),
        ("GET", "/api/orders", {401, 422}),
        ("GET", "/api/algos", {401}),
        ("POST", "/api/algos/{order_id}/cancel", {401, 404, 409, 422, 502}),
        ("POST", "/api/halt", {401, 404, 422}),
        ("POST", "/api/resume", {401}),
        ("POST", "/webhook", {401, 408, 409, 413, 415, 422, 429, 503}),
    ],
)
def test_every_error_an_operation_gives_is_documented_with_its_body(
    api: TestClient, method: str, path: str, errors: set[int]
) -> None:
    documented = responses(api, method, path)
    for code in errors:
        assert schema_name(documented[str(code)]) == (
            "InvalidBody" if code == 422 else "ErrorBody"
        ), code


def test_the_documented_422_is_the_one_given(api: TestClient) -> None:
    documented = responses(api, "GET", "/api/orders")["422"]
    assert schema_name(documented) == "InvalidBody"  # not FastAPI's {"detail": [...]}
    answer = api.get("/api/orders", params={"limit": "0"}, headers=AUTH)
    assert answer.status_code == 422
    assert [error["field"] for error in answer.json()["errors"]] == ["limit"]


def test_the_admin_token_is_a_declared_bearer_scheme(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["adminToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    parameters = document["paths"]["/api/orders"]["get"]["parameters"]
    assert "authorization" not in {p["name"].lower() for p in parameters}
    assert api.get("/api/orders", headers={"Authorization": "bearer  x"}).status_code == 401


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
