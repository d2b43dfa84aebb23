"""Routes declared as rows of a table, each registered as the handler it would be by hand.

Most of Binance's paths answer one call on the account of the key that signed the request:
an ``AccountRoute`` row names the method, the path and that call. The few answered from the
exchange as a whole (the server time, empty lists, the key's restrictions) are ``Route`` rows,
which also say what the request must carry. A path with logic of its own stays a function in
its ``routes_*`` module. Every answer is JSON; an account row's is encoded with the engine's
lock still held, so no tick changes the state it shows while it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from paper.accounts import Account
from paper.deps import Keyed, Paper, PaperState, Signed
from paper.params import Params

Endpoint = Callable[..., Response]
ExchangeAnswer = Callable[[PaperState, Params], object]
AccountAnswer = Callable[[Account, Params], object]


class Auth(Enum):
    """What a request must carry, as Binance's security types tell the paper exchange."""

    NONE = "NONE"  # nothing; its parameters are not even read
    KEYED = "KEYED"  # an API key, no signature (MARKET_DATA)
    SIGNED = "SIGNED"  # a signed request (TRADE, USER_DATA)


# method, path, auth, answer(paper, params): answered without touching the market.
Route = tuple[str, str, Auth, ExchangeAnswer]
# method, path, answer(account, params): a signed request, answered inside the account of its
# key, with the engine's lock held and the market caught up to now (``Engine.signed``).
AccountRoute = tuple[str, str, AccountAnswer]


def register(
    router: APIRouter, routes: Iterable[Route] = (), account_routes: Iterable[AccountRoute] = ()
) -> None:
    """Add a handler to ``router`` for every row, in the order given."""
    for method, path, auth, answer in routes:
        router.add_api_route(path, ENDPOINTS[auth](answer), methods=[method])
    for method, path, account_answer in account_routes:
        router.add_api_route(path, _in_account(account_answer), methods=[method])


# The dependencies a handler declares are what FastAPI runs, in that order: the parameters
# (and their key or signature) before the exchange state, as the hand-written handlers did.


def _unsigned(answer: ExchangeAnswer) -> Endpoint:
    def endpoint(paper: Paper) -> Response:
        return JSONResponse(answer(paper, Params({})))

    return endpoint


def _keyed(answer: ExchangeAnswer) -> Endpoint:
    def endpoint(p: Keyed, paper: Paper) -> Response:
        return JSONResponse(answer(paper, p))

    return endpoint


def _signed(answer: ExchangeAnswer) -> Endpoint:
    def endpoint(p: Signed, paper: Paper) -> Response:
        return JSONResponse(answer(paper, p))

    return endpoint


ENDPOINTS: dict[Auth, Callable[[ExchangeAnswer], Endpoint]] = {
    Auth.NONE: _unsigned,
    Auth.KEYED: _keyed,
    Auth.SIGNED: _signed,
}


def _in_account(answer: AccountAnswer) -> Endpoint:
    def endpoint(p: Signed, paper: Paper) -> Response:
        with paper.engine.signed(p.key) as account:
            return JSONResponse(answer(account, p))

    return endpoint
