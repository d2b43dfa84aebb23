"""Shared state of one paper exchange app and the request dependencies its routes use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from paper.auth import Verifier
from paper.clock import Clock, wall_ms
from paper.engine import Engine
from paper.faults import Faults
from paper.params import Params
from paper.ratelimit import WeightCounter
from paper.settings import PaperSettings

FORM = "application/x-www-form-urlencoded"


def default_restrictions() -> dict[str, object]:
    # A key restricted to trusted IPs, able to read and trade spot and futures, unable to
    # withdraw: what a daemon's key-hygiene check should accept.
    return {
        "ipRestrict": True,
        "createTime": 1698645219000,
        "enableReading": True,
        "enableWithdrawals": False,
        "enableInternalTransfer": False,
        "enableMargin": False,
        "enableFutures": True,
        "permitsUniversalTransfer": False,
        "enableVanillaOptions": False,
        "enableFixApiTrade": False,
        "enableFixReadOnly": False,
        "enableSpotAndMarginTrading": True,
        "enablePortfolioMarginTrading": False,
    }


@dataclass
class PaperState:
    settings: PaperSettings
    clock: Clock
    engine: Engine
    faults: Faults
    weights: WeightCounter
    verifier: Verifier
    # Per API key; a key missing here has the defaults.
    restrictions: dict[str, dict[str, object]] = field(default_factory=dict)

    def restrictions_of(self, key: str) -> dict[str, object]:
        return self.restrictions.setdefault(key, default_restrictions())

    def server_ms(self) -> int:
        """Binance's server time: wall time plus any clock-offset fault.

        The signature timestamp rule and ``/time`` use wall time even with a manual market
        clock, so a client's timestamps stay valid however far a test steps the market.
        """
        return wall_ms() + self.faults.clock_offset_ms


def get_paper(request: Request) -> PaperState:
    state: PaperState = request.app.state.paper
    return state


async def read_params(request: Request) -> tuple[str, str, Params]:
    query = request.scope.get("query_string", b"").decode("utf-8", "replace")
    body = ""
    content_type = request.headers.get("content-type", "")
    if request.method != "GET" or content_type:
        raw = await request.body()
        if raw and (not content_type or content_type.startswith(FORM)):
            body = raw.decode("utf-8", "replace")
    lag_s = float(getattr(request.state, "lag_s", 0.0))
    return query, body, Params.merge(query, body, lag_s=lag_s)


async def public_params(request: Request) -> Params:
    _, _, params = await read_params(request)
    return params


async def signed_params(request: Request) -> Params:
    query, body, params = await read_params(request)
    paper = get_paper(request)
    params.key = paper.verifier.check(
        api_key=request.headers.get("X-MBX-APIKEY"),
        query=query,
        body=body,
        params=params,
        server_ms=paper.server_ms(),
    )
    return params


async def keyed_params(request: Request) -> Params:
    """MARKET_DATA endpoints: an API key, no signature."""
    _, _, params = await read_params(request)
    params.key = get_paper(request).verifier.known(request.headers.get("X-MBX-APIKEY"))
    return params


Paper = Annotated[PaperState, Depends(get_paper)]
Keyed = Annotated[Params, Depends(keyed_params)]
Public = Annotated[Params, Depends(public_params)]
Signed = Annotated[Params, Depends(signed_params)]
