"""Planning a take-profit ladder, and where breakeven puts the stop: pure, no exchange."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from app.execution.breakeven import EntryFill, breakeven_price, entry_fees, with_breakeven
from app.execution.ladder import open_slices, split
from app.execution.planning import Levels, NotProtected
from tests.execution.test_planning import SPOT, USDM, bracket

D = Decimal
STEP = D("0.00001")
TARGETS = ((D(70000), D("0.5")), (D(72000), D("0.3")), (D(74000), D("0.2")))
LADDER = Levels(D(70000), D(60000), targets=TARGETS)


@given(
    total=st.decimals(min_value="0.00001", max_value="100", places=8),
    cut=st.integers(min_value=1, max_value=99),
)
def test_slices_add_up_to_what_is_held_and_never_exceed_it(total: Decimal, cut: int) -> None:
    fractions = [D("0.5"), D("0.3"), D("0.2")]
    assert sum(split(total, fractions, STEP)) == total
    holding = (total * cut / 100).quantize(D("0.00000001"))
    slices = open_slices(total, holding, TARGETS, STEP)
    assert sum(s.quantity for s in slices) == holding
    assert all(s.quantity > 0 for s in slices)
    assert [s.target for s in slices] == sorted(s.target for s in slices)


def test_what_the_position_closed_is_taken_from_the_first_targets() -> None:
    # 0.3 BTC: targets of 0.15, 0.09 and 0.06; 0.2 closed covers target 1 and 0.05 of 2.
    slices = open_slices(D("0.3"), D("0.1"), TARGETS, STEP)
    assert [(s.target, s.quantity) for s in slices] == [(2, D("0.04")), (3, D("0.06"))]


def test_a_spot_ladder_is_one_oco_per_open_target_with_its_own_client_ids() -> None:
    intents = bracket(quantity=D("0.3"), levels=LADDER)
    assert not isinstance(intents, NotProtected)
    assert [(i.kind, i.quantity, i.facts["target"]) for i in intents] == [
        ("oco", D("0.15"), 1), ("oco", D("0.09"), 2), ("oco", D("0.06"), 3),
    ]  # fmt: skip
    ids = {i.client_id for i in intents} | {
        leg.client_id for i in intents for leg in (i.above, i.below) if leg is not None
    }
    assert len(ids) == 9
    assert all(i.below is not None and i.below.stop_price == D(60000) for i in intents)


def test_a_slice_too_small_for_an_order_joins_the_next_target() -> None:
    # 0.3 received, 0.15001 held: target 1 has 0.00001 left, one step (0.6 USDT at the
    # 60,000 stop), under the 5 USDT minimum notional: it joins target 2.
    intents = bracket(quantity=D("0.15001"), entry_quantity=D("0.3"), levels=LADDER)
    assert not isinstance(intents, NotProtected)
    assert [(i.facts["target"], i.quantity) for i in intents] == [(2, D("0.09001")), (3, D("0.06"))]


def test_usdm_ladder_has_reduce_only_take_profits_and_one_stop_for_the_holding() -> None:
    intents = bracket(market="usdm", rules=USDM, quantity=D("0.3"), levels=LADDER)
    assert not isinstance(intents, NotProtected)
    got = [(i.order_type, i.quantity, i.stop_price, i.reduce_only) for i in intents]
    assert got == [
        ("TAKE_PROFIT_MARKET", D("0.15"), D(70000), True),
        ("TAKE_PROFIT_MARKET", D("0.09"), D(72000), True),
        ("TAKE_PROFIT_MARKET", D("0.06"), D(74000), True),
        ("STOP_MARKET", D("0.3"), D(60000), True),
    ]


def test_breakeven_counts_the_entry_and_the_close_commission_on_the_safe_side() -> None:
    # A spot BUY of 1 BTC at 100 paying 0.1 % in BTC holds 0.999: each costs 100 / 0.999,
    # and selling it pays 0.1 % again.
    fills = [EntryFill(D(100), D(1), D(100), D("0.001"), "BTC")]
    fees = entry_fees(fills, base_asset="BTC", quote_asset="USDT")
    long = breakeven_price(long=True, received=D("0.999"), entry_cost=D(100), fees=fees,
                           tick=D("0.01"))  # fmt: skip
    assert long == D("100.21")  # 100.2003..., up
    # A short that sold 1 at 100 paying 0.1 USDT buys back at most at 99.9 / 1.001, down.
    fills = [EntryFill(D(100), D(1), D(100), D("0.1"), "USDT")]
    fees = entry_fees(fills, base_asset="BTC", quote_asset="USDT")
    short = breakeven_price(long=False, received=D(1), entry_cost=D(100), fees=fees,
                            tick=D("0.01"))  # fmt: skip
    assert short == D("99.80")  # 99.8002..., down


def test_breakeven_waits_for_its_target_and_never_loosens_a_stop() -> None:
    levels = Levels(D(70000), D(60000), targets=TARGETS, breakeven_after=1)

    def moved(holding: str, breakeven: str) -> Decimal | None:
        out = with_breakeven(levels, long=True, total=D("0.3"), holding=D(holding), step=STEP,
                             breakeven=D(breakeven))  # fmt: skip
        return out.stop_price

    assert moved("0.3", "65100") == D(60000)  # target 1 has not filled
    assert moved("0.16", "65100") == D(60000)  # partly
    assert moved("0.15", "65100") == D(65100)
    assert moved("0.15", "59000") == D(60000)  # already beyond breakeven: unchanged


def test_a_spot_trailing_stop_is_the_oco_stop_leg_without_a_stop_price() -> None:
    intents = bracket(levels=Levels(D(70000), D(60000), trailing_rate=D("1.5")))
    assert not isinstance(intents, NotProtected)
    (oco,) = intents
    assert oco.below is not None
    assert (oco.below.type, oco.below.stop_price, oco.below.trailing_delta) == (
        "STOP_LOSS", None, 150,
    )  # fmt: skip


def test_a_spot_trail_that_would_start_beyond_the_stop_leaves_the_fixed_stop() -> None:
    # From 65,000 a 10 % trail starts at 58,500, below the 60,000 stop asked for.
    intents = bracket(levels=Levels(D(70000), D(60000), trailing_rate=D(10)))
    assert not isinstance(intents, NotProtected)
    (oco,) = intents
    assert oco.below is not None and oco.below.trailing_delta is None
    assert oco.below.stop_price == D(60000)
    assert "trailing stop left out" in oco.facts["notes"][0]


def test_a_usdm_trailing_stop_rides_beside_the_fixed_stop() -> None:
    levels = Levels(D(70000), D(60000), trailing_rate=D(1), trailing_activation=D(68000))
    intents = bracket(market="usdm", rules=USDM, quantity=D("0.3"), levels=levels)
    assert not isinstance(intents, NotProtected)
    got = [(i.order_type, i.quantity, i.reduce_only, i.facts["bracket_leg"]) for i in intents]
    assert got == [
        ("TAKE_PROFIT_MARKET", D("0.3"), True, "tp"),
        ("STOP_MARKET", D("0.3"), True, "sl"),
        ("TRAILING_STOP_MARKET", D("0.3"), True, "trail"),
    ]
    assert (intents[2].facts["callback_rate"], intents[2].facts["activation_price"]) == (
        "1", "68000",
    )  # fmt: skip
    # An activation the market already passed would be refused: the trail starts now.
    late = bracket(market="usdm", rules=USDM, quantity=D("0.3"), levels=levels, price=D(69000))
    assert not isinstance(late, NotProtected)
    assert late[2].facts["activation_price"] is None


def test_a_ladder_with_a_merged_slice_is_not_replaced_again_on_the_next_pass() -> None:
    # Target 1 mostly filled: its last step joined target 2 when the bracket was planned.
    # The protection pass must see that bracket as the one it wants, not re-place it forever.
    from app.execution.protection import why_replace
    from app.models import Order, Position

    holding = D("0.15001")
    intents = bracket(quantity=holding, entry_quantity=D("0.3"), levels=LADDER)
    assert not isinstance(intents, NotProtected)
    live = [
        Order(kind=i.kind, quantity=i.quantity, extra={**i.extra(), "sized_for": str(holding)})
        for i in intents
    ]
    position = Position(market="spot", side="BUY", quantity=D("0.3"))
    assert why_replace(position, LADDER, live, holding, step=STEP, rules=SPOT) is None
    # ... while a target whose order went missing is.
    assert why_replace(position, LADDER, live[1:], holding, step=STEP, rules=SPOT) == (
        "take-profit target 2 not covered"
    )
