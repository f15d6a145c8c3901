"""The planning tools against closed forms and month-by-month simulations written here,
in Decimal, independently of domain/advisor/tools/planning.py."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from domain.advisor.tools import ToolContext, ToolInputError, run_tool, toolbox
from domain.core.crypto import FieldCipher
from domain.core.tenancy import Tenant

CENT = Decimal("0.01")


def _context(base: str = "INR") -> ToolContext:
    """Math tools read only the base currency: no database behind this session."""
    workspace = uuid.uuid4()
    tenant = Tenant(
        workspace_id=workspace,
        base_currency=base,
        cipher=FieldCipher(owner=workspace, active_key_id=1),
        user_id=uuid.uuid4(),
        role="viewer",
    )
    return ToolContext(session=AsyncSession(), tenant=tenant, today=dt.date(2026, 3, 14))


async def _run(name: str, arguments: dict[str, Any], base: str = "INR") -> dict[str, Any]:
    result = await run_tool(_context(base), name, arguments)
    assert result.transaction_ids == ()  # pure math cites nothing
    return result.data


def _value(money: dict[str, str], currency: str = "INR") -> Decimal:
    assert money["currency"] == currency
    return Decimal(money["amount"])


async def test_future_value_of_20000_a_month_at_8_percent_for_10_years() -> None:
    data = await _run(
        "future_value", {"monthly_saving": 20000, "annual_rate_percent": 8, "years": 10}
    )
    with localcontext() as context:
        context.prec = 60
        rate = Decimal(8) / Decimal(1200)
        closed = Decimal(20000) * ((1 + rate) ** 120 - 1) / rate
        balance = Decimal(0)
        for _ in range(120):  # deposit at the end of each month, after that month's interest
            balance = balance * (1 + rate) + 20000
    expected = closed.quantize(CENT, rounding=ROUND_HALF_EVEN)
    assert _value(data["future_value"]) == expected
    assert balance.quantize(CENT, rounding=ROUND_HALF_EVEN) == expected
    assert _value(data["total_deposited"]) == Decimal(2_400_000)
    assert _value(data["growth"]) == expected - 2_400_000
    assert "end of each month" in data["convention"] and "monthly" in data["convention"]
    assert len(data["by_year"]) == 10 and data["by_year"][-1]["value"] == data["future_value"]
    assert Decimal(3_658_000) < expected < Decimal(3_660_000)  # the published order of size


async def test_deposits_at_the_start_of_the_month_earn_one_more_month() -> None:
    arguments = {"monthly_saving": "5000", "annual_rate_percent": "6.5", "years": 3}
    end = await _run("future_value", arguments)
    start = await _run("future_value", {**arguments, "deposit_timing": "start", "initial": 1000})
    with localcontext() as context:
        context.prec = 60
        rate = Decimal("6.5") / 1200
        balance = Decimal(1000)
        for _ in range(36):
            balance = (balance + 5000) * (1 + rate)
    assert _value(start["future_value"]) == balance.quantize(CENT, rounding=ROUND_HALF_EVEN)
    assert _value(start["future_value"]) > _value(end["future_value"])
    assert "start of each month" in start["convention"]


async def test_zero_rate_and_another_currency() -> None:
    data = await _run(
        "future_value",
        {"monthly_saving": "100", "annual_rate_percent": 0, "years": 2, "currency": "JPY"},
    )
    assert data["future_value"] == {"amount": "2400", "currency": "JPY"}


async def test_loan_emi_of_a_standard_home_loan_and_its_schedule() -> None:
    data = await _run(
        "loan_emi",
        {
            "principal": "2500000",
            "annual_rate_percent": "8.6",
            "months": 240,
            "schedule": "monthly",
        },
    )
    with localcontext() as context:
        context.prec = 60
        rate = Decimal("8.6") / 1200
        growth = (1 + rate) ** 240
        emi = Decimal(2_500_000) * rate * growth / (growth - 1)
    emi = emi.quantize(CENT, rounding=ROUND_HALF_EVEN)
    assert _value(data["emi"]) == emi
    schedule = data["schedule"]
    assert len(schedule) == 240
    balance = Decimal(2_500_000)
    interest_total = Decimal(0)
    for row in schedule:  # replay the statement: interest on the balance, rounded each month
        interest = (balance * Decimal("8.6") / 1200).quantize(CENT, rounding=ROUND_HALF_EVEN)
        assert _value(row["interest"]) == interest
        assert _value(row["principal"]) + interest == _value(row["payment"])
        balance -= _value(row["principal"])
        assert _value(row["balance"]) == balance
        interest_total += interest
    assert balance == 0
    assert all(_value(r["payment"]) == emi for r in schedule[:-1])
    assert abs(_value(schedule[-1]["payment"]) - emi) < 1  # the last one settles rounding
    assert _value(data["total_interest"]) == interest_total
    assert _value(data["total_paid"]) == 2_500_000 + interest_total


async def test_a_long_loan_gets_a_yearly_schedule_by_default() -> None:
    data = await _run("loan_emi", {"principal": 120000, "annual_rate_percent": 0, "months": 48})
    assert data["emi"] == {"amount": "2500.00", "currency": "INR"}
    assert data["schedule_detail"] == "yearly" and len(data["schedule"]) == 4
    assert sum(_value(y["principal"]) for y in data["schedule"]) == 120000
    assert data["total_interest"] == {"amount": "0.00", "currency": "INR"}


async def test_goal_saving_is_the_smallest_monthly_amount_that_reaches_the_target() -> None:
    data = await _run(
        "goal_saving",
        {
            "target": "1000000",
            "months": 60,
            "annual_rate_percent": 7,
            "current_savings": "100000",
        },
    )
    with localcontext() as context:
        context.prec = 60
        rate = Decimal(7) / 1200
        growth = (1 + rate) ** 60
        needed = (Decimal(1_000_000) - Decimal(100_000) * growth) * rate / (growth - 1)

        def after(monthly: Decimal) -> Decimal:
            balance = Decimal(100_000)
            for _ in range(60):
                balance = balance * (1 + rate) + monthly
            return balance

    monthly = needed.quantize(CENT, rounding=ROUND_CEILING)
    assert _value(data["monthly_saving"]) == monthly
    assert after(monthly) >= 1_000_000 > after(monthly - CENT)
    assert _value(data["projected_value"]) == after(monthly).quantize(CENT, ROUND_HALF_EVEN)
    assert _value(data["total_deposits"]) == monthly * 60
    assert data["already_on_track"] is False


async def test_a_goal_already_covered_needs_nothing_more() -> None:
    data = await _run(
        "goal_saving",
        {"target": 1000, "months": 12, "annual_rate_percent": 5, "current_savings": 2000},
    )
    assert data["monthly_saving"] == {"amount": "0.00", "currency": "INR"}
    assert data["already_on_track"] is True


@pytest.mark.parametrize(
    ("name", "arguments", "field"),
    [
        (
            "future_value",
            {"monthly_saving": "20000.001", "annual_rate_percent": 8, "years": 10},
            "monthly_saving",
        ),
        (
            "future_value",
            {"monthly_saving": -1, "annual_rate_percent": 8, "years": 10},
            "monthly_saving",
        ),
        ("future_value", {"monthly_saving": 1, "annual_rate_percent": 8, "years": 0}, "years"),
        (
            "future_value",
            {"monthly_saving": 1, "annual_rate_percent": 101, "years": 1},
            "annual_rate_percent",
        ),
        (
            "future_value",
            {"monthly_saving": "NaN", "annual_rate_percent": 8, "years": 1},
            "monthly_saving",
        ),
        (
            "future_value",
            {"monthly_saving": 1, "annual_rate_percent": 8, "years": 1, "currency": "XYZ"},
            "currency",
        ),
        ("future_value", {"monthly_saving": 1, "annual_rate_percent": 8}, "years"),
        ("loan_emi", {"principal": 0, "annual_rate_percent": 8, "months": 12}, "principal"),
        ("loan_emi", {"principal": 1000, "annual_rate_percent": 8, "months": 601}, "months"),
        (
            "loan_emi",
            {"principal": 1000, "annual_rate_percent": 8, "months": 12, "schedule": "daily"},
            "schedule",
        ),
        (
            "goal_saving",
            {"target": 1000, "months": 12, "annual_rate_percent": 8, "current_savings": "1.5e400"},
            "current_savings",
        ),
        (
            "goal_saving",
            {"target": 1000, "months": 12, "annual_rate_percent": 8, "extra": 1},
            "extra",
        ),
    ],
)
async def test_bad_arguments_are_refused_with_the_field(
    name: str, arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(ToolInputError) as raised:
        await run_tool(_context(), name, arguments)
    assert raised.value.field == field, raised.value.message


async def test_arguments_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(ToolInputError, match="JSON object"):
        await run_tool(_context(), "future_value", ["20000"])  # type: ignore[arg-type]


def test_every_tool_has_an_object_schema_and_a_description() -> None:
    tools = toolbox()
    assert set(tools) == {
        "spending",
        "compare_periods",
        "cash_flow",
        "net_worth",
        "recurring_payments",
        "budget_status",
        "future_value",
        "loan_emi",
        "goal_saving",
        "search_transactions",
    }
    for name, tool in tools.items():
        assert tool.name == name and len(tool.description) > 40
        schema = tool.input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert "$defs" not in str(schema) and "$ref" not in str(schema)
