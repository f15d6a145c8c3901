"""Planning math: a monthly saving plan's future value, a loan's EMI and amortization, and
the monthly saving a goal needs. Pure functions of their arguments (no ledger).

Conventions, stated in every result: the annual rate is nominal and compounds monthly
(monthly rate = annual rate / 12); deposits and instalments fall at the end of each month
unless `deposit_timing` says "start". Computed in Decimal at 50 significant digits, then
rounded once to the currency's minor unit (half-even) for each figure shown; a loan's
schedule rounds each month's interest to the minor unit and settles the rounding in the
last instalment, as a lender's statement does; a goal's monthly saving is rounded up, so
the goal is met.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Literal

from pydantic import Field

from domain.advisor.tools.base import (
    Arguments,
    ModelTool,
    ToolContext,
    ToolInputError,
    ToolResult,
    minor_money,
)
from domain.core.errors import DomainError
from domain.core.money import Money, exponent

Timing = Literal["end", "start"]
PRECISION = 50
MAX_AMOUNT = Decimal(10) ** 13


def _rate_field() -> Any:
    return Field(
        ge=0, le=100, max_digits=12, description="Nominal annual interest rate in percent, e.g. 8."
    )


def _currency_field() -> Any:
    return Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code; the workspace's base currency when absent.",
    )


def _timing_field() -> Any:
    return Field(
        default="end", description='When each monthly deposit is made: "end" (default) or "start".'
    )


@contextmanager
def _exact() -> Iterator[None]:
    with localcontext() as context:
        context.prec = PRECISION
        yield


def _currency(ctx: ToolContext, currency: str | None) -> str:
    chosen = currency or ctx.tenant.base_currency
    try:
        exponent(chosen)
    except DomainError:
        raise ToolInputError(f"Unknown currency {chosen!r}", field="currency") from None
    return chosen


def _minor(value: Decimal, currency: str, field: str) -> int:
    """An argument amount in minor units; more decimals than the currency has is an error."""
    try:
        return Money.parse(value, currency, field=field).minor
    except DomainError as error:
        raise ToolInputError(error.message, field=field) from None


def _round(value: Decimal, currency: str, rounding: str = ROUND_HALF_EVEN) -> int:
    """A major-unit Decimal to minor units."""
    with _exact():
        scaled = value.scaleb(exponent(currency))
        return int(scaled.quantize(Decimal(1), rounding=rounding))


def _major(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def monthly_rate(annual_rate_percent: Decimal) -> Decimal:
    with _exact():
        return annual_rate_percent / 100 / 12


def saving_plan_value(
    initial: Decimal, monthly: Decimal, rate: Decimal, months: int, timing: Timing
) -> Decimal:
    """Exact value after `months` of an initial sum plus a monthly deposit, compounded monthly:
    initial * (1+r)^n + monthly * ((1+r)^n - 1) / r, times (1+r) for deposits at the start."""
    with _exact():
        if rate == 0:
            return initial + monthly * months
        growth = (1 + rate) ** months
        annuity = (growth - 1) / rate
        if timing == "start":
            annuity *= 1 + rate
        return initial * growth + monthly * annuity


class FutureValueArguments(Arguments):
    monthly_saving: Decimal = Field(ge=0, le=MAX_AMOUNT, description="Deposit per month.")
    annual_rate_percent: Decimal = _rate_field()
    years: int = Field(ge=1, le=100, description="Whole years of saving, 1 to 100.")
    initial: Decimal = Field(default=Decimal(0), ge=0, le=MAX_AMOUNT, description="Saved today.")
    currency: str | None = _currency_field()
    deposit_timing: Timing = _timing_field()


def _convention(timing: Timing) -> str:
    when = "at the end of each month" if timing == "end" else "at the start of each month"
    return f"nominal annual rate compounded monthly (rate / 12 per month); deposits {when}"


class FutureValueTool(ModelTool[FutureValueArguments]):
    name = "future_value"
    description = (
        "Future value of a monthly saving plan (plus an optional initial sum) at a fixed annual "
        "rate compounded monthly, deposits at the end of each month unless deposit_timing is "
        '"start": the final value, total deposited, growth, and the value at each year end.'
    )
    arguments = FutureValueArguments

    async def compute(self, ctx: ToolContext, args: FutureValueArguments) -> ToolResult:
        currency = _currency(ctx, args.currency)
        monthly = _major(_minor(args.monthly_saving, currency, "monthly_saving"), currency)
        initial = _major(_minor(args.initial, currency, "initial"), currency)
        rate = monthly_rate(args.annual_rate_percent)
        by_year = []
        for year in range(1, args.years + 1):
            months = 12 * year
            value = _round(
                saving_plan_value(initial, monthly, rate, months, args.deposit_timing), currency
            )
            deposited = _round(initial + monthly * months, currency)
            by_year.append(
                {
                    "year": year,
                    "deposited": minor_money(deposited, currency),
                    "value": minor_money(value, currency),
                    "growth": minor_money(value - deposited, currency),
                }
            )
        final = by_year[-1]
        data = {
            "currency": currency,
            "monthly_saving": minor_money(_round(monthly, currency), currency),
            "initial": minor_money(_round(initial, currency), currency),
            "annual_rate_percent": str(args.annual_rate_percent),
            "years": args.years,
            "months": 12 * args.years,
            "convention": _convention(args.deposit_timing),
            "future_value": final["value"],
            "total_deposited": final["deposited"],
            "growth": final["growth"],
            "by_year": by_year,
        }
        return ToolResult(data)


class LoanArguments(Arguments):
    principal: Decimal = Field(gt=0, le=MAX_AMOUNT, description="The amount borrowed.")
    annual_rate_percent: Decimal = _rate_field()
    months: int = Field(ge=1, le=600, description="Tenure in months, 1 to 600.")
    currency: str | None = _currency_field()
    schedule: Literal["monthly", "yearly", "none"] | None = Field(
        default=None,
        description="Amortization detail; monthly up to 36 months, else yearly, by default.",
    )


def emi(principal: Decimal, rate: Decimal, months: int) -> Decimal:
    """Exact equated monthly instalment: P * r * (1+r)^n / ((1+r)^n - 1); P / n at 0%."""
    with _exact():
        if rate == 0:
            return principal / months
        growth = (1 + rate) ** months
        return principal * rate * growth / (growth - 1)


def amortize(
    principal_minor: int, rate: Decimal, months: int, instalment_minor: int
) -> list[tuple[int, int, int, int]]:
    """Rows of (month, interest, principal repaid, balance after) in minor units. Interest is
    rounded half-even each month; the last instalment clears what is left."""
    rows = []
    balance = principal_minor
    for month in range(1, months + 1):
        with _exact():
            interest = int((balance * rate).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        repaid = instalment_minor - interest
        if month == months or repaid >= balance:
            repaid = balance
        balance -= repaid
        rows.append((month, interest, repaid, balance))
        if balance == 0:
            break
    return rows


class LoanEmiTool(ModelTool[LoanArguments]):
    name = "loan_emi"
    description = (
        "Equated monthly instalment (EMI) of a loan at a fixed annual rate compounded monthly, "
        "instalments at the end of each month: the EMI, total interest, total paid and the "
        "amortization schedule (interest, principal and balance per month or per year)."
    )
    arguments = LoanArguments

    async def compute(self, ctx: ToolContext, args: LoanArguments) -> ToolResult:
        currency = _currency(ctx, args.currency)
        principal_minor = _minor(args.principal, currency, "principal")
        rate = monthly_rate(args.annual_rate_percent)
        instalment = _round(emi(_major(principal_minor, currency), rate, args.months), currency)
        rows = amortize(principal_minor, rate, args.months, instalment)
        total_interest = sum(row[1] for row in rows)
        last = rows[-1]
        detail = args.schedule or ("monthly" if args.months <= 36 else "yearly")
        data: dict[str, Any] = {
            "currency": currency,
            "principal": minor_money(principal_minor, currency),
            "annual_rate_percent": str(args.annual_rate_percent),
            "months": args.months,
            "convention": _convention("end").replace("deposits", "instalments"),
            "emi": minor_money(instalment, currency),
            "final_instalment": minor_money(last[1] + last[2], currency),
            "total_interest": minor_money(total_interest, currency),
            "total_paid": minor_money(principal_minor + total_interest, currency),
            "schedule_detail": detail,
            "schedule": _schedule(rows, detail, currency),
        }
        return ToolResult(data)


def _schedule(
    rows: list[tuple[int, int, int, int]], detail: str, currency: str
) -> list[dict[str, Any]]:
    if detail == "none":
        return []
    if detail == "monthly":
        return [
            {
                "month": month,
                "payment": minor_money(interest + repaid, currency),
                "interest": minor_money(interest, currency),
                "principal": minor_money(repaid, currency),
                "balance": minor_money(balance, currency),
            }
            for month, interest, repaid, balance in rows
        ]
    years: dict[int, list[tuple[int, int, int, int]]] = {}
    for row in rows:
        years.setdefault((row[0] - 1) // 12 + 1, []).append(row)
    return [
        {
            "year": year,
            "payments": minor_money(sum(r[1] + r[2] for r in part), currency),
            "interest": minor_money(sum(r[1] for r in part), currency),
            "principal": minor_money(sum(r[2] for r in part), currency),
            "balance": minor_money(part[-1][3], currency),
        }
        for year, part in years.items()
    ]


class GoalArguments(Arguments):
    target: Decimal = Field(gt=0, le=MAX_AMOUNT, description="The amount wanted at the end.")
    months: int = Field(ge=1, le=1200, description="Months until the goal, 1 to 1200.")
    annual_rate_percent: Decimal = _rate_field()
    current_savings: Decimal = Field(
        default=Decimal(0), ge=0, le=MAX_AMOUNT, description="Already saved; it grows too."
    )
    currency: str | None = _currency_field()
    deposit_timing: Timing = _timing_field()


class GoalSavingTool(ModelTool[GoalArguments]):
    name = "goal_saving"
    description = (
        "The monthly saving needed to reach a target in a number of months at a fixed annual "
        "rate compounded monthly (deposits at the end of each month unless deposit_timing is "
        '"start"), counting what is already saved: the monthly amount (rounded up), total '
        "deposits, interest earned and the projected value."
    )
    arguments = GoalArguments

    async def compute(self, ctx: ToolContext, args: GoalArguments) -> ToolResult:
        currency = _currency(ctx, args.currency)
        target = _major(_minor(args.target, currency, "target"), currency)
        current = _major(_minor(args.current_savings, currency, "current_savings"), currency)
        rate = monthly_rate(args.annual_rate_percent)
        n = args.months
        grown = saving_plan_value(current, Decimal(0), rate, n, args.deposit_timing)
        with _exact():
            if grown >= target:
                needed = Decimal(0)
            else:
                per_unit = saving_plan_value(Decimal(0), Decimal(1), rate, n, args.deposit_timing)
                needed = (target - grown) / per_unit
        monthly_minor = _round(needed, currency, ROUND_CEILING)
        monthly = _major(monthly_minor, currency)
        projected = _round(
            saving_plan_value(current, monthly, rate, n, args.deposit_timing), currency
        )
        deposits = monthly_minor * n
        current_minor = _round(current, currency)
        data = {
            "currency": currency,
            "target": minor_money(_round(target, currency), currency),
            "months": n,
            "annual_rate_percent": str(args.annual_rate_percent),
            "current_savings": minor_money(current_minor, currency),
            "convention": _convention(args.deposit_timing)
            + "; the monthly saving is rounded up to the minor unit",
            "monthly_saving": minor_money(monthly_minor, currency),
            "already_on_track": monthly_minor == 0,
            "total_deposits": minor_money(deposits, currency),
            "interest_earned": minor_money(projected - current_minor - deposits, currency),
            "projected_value": minor_money(projected, currency),
        }
        return ToolResult(data)
