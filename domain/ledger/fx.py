"""FX rates and conversion to the workspace's base currency."""

from __future__ import annotations

import bisect
import datetime as dt
from decimal import Decimal, InvalidOperation

from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.errors import BadInput
from domain.core.money import check_currency, convert
from domain.core.tenancy import Tenant
from domain.ledger.models import FxRate
from domain.ledger.repository import LedgerRepository

MIN_RATE = Decimal("1e-9")
MAX_RATE = Decimal("1e9")


class FxTable:
    """Rates in memory: the latest rate on or before a date, in either direction."""

    def __init__(self, rates: list[FxRate]) -> None:
        self._series: dict[tuple[str, str], tuple[list[dt.date], list[Decimal]]] = {}
        for rate in sorted(rates, key=lambda r: r.date):
            dates, values = self._series.setdefault((rate.base, rate.quote), ([], []))
            dates.append(rate.date)
            values.append(Decimal(rate.rate))

    def rate(self, base: str, quote: str, on: dt.date) -> Decimal | None:
        if base == quote:
            return Decimal(1)
        direct = self._latest((base, quote), on)
        if direct is not None:
            return direct
        inverse = self._latest((quote, base), on)
        return None if inverse is None else Decimal(1) / inverse

    def _latest(self, pair: tuple[str, str], on: dt.date) -> Decimal | None:
        series = self._series.get(pair)
        if series is None:
            return None
        index = bisect.bisect_right(series[0], on) - 1
        return series[1][index] if index >= 0 else None

    def convert(self, minor: int, currency: str, target: str, on: dt.date) -> int | None:
        rate = self.rate(currency, target, on)
        return None if rate is None else convert(minor, currency, rate, target)


async def load_table(session: AsyncSession, tenant: Tenant) -> FxTable:
    return FxTable(await LedgerRepository(session, tenant.workspace_id).all_fx_rates())


async def set_rate(
    session: AsyncSession, tenant: Tenant, *, base: str, quote: str, on: dt.date, rate: str
) -> FxRate:
    tenant.require_write()
    check_currency(base)
    check_currency(quote)
    if base == quote:
        raise BadInput("An FX rate needs two different currencies", field="quote")
    try:
        value = Decimal(rate)
    except (InvalidOperation, ValueError):
        raise BadInput(f"Not a decimal rate: {rate!r}", field="rate") from None
    if not value.is_finite() or value <= 0:
        raise BadInput("An FX rate must be a positive number", field="rate")
    if not MIN_RATE <= value <= MAX_RATE or len(value.normalize().as_tuple().digits) > 20:
        raise BadInput(
            f"An FX rate lies between {MIN_RATE} and {MAX_RATE}, with at most 20 digits",
            field="rate",
        )
    repository = LedgerRepository(session, tenant.workspace_id)
    existing = await repository.fx_rate_on(base, quote, on)
    if existing is not None:
        existing.rate = str(value)
        await session.flush()
        return existing
    row = FxRate(workspace_id=tenant.workspace_id, base=base, quote=quote, date=on, rate=str(value))
    session.add(row)
    await session.flush()
    return row
