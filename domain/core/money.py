"""Money: integer minor units plus an ISO-4217 code, with the currency's own exponent."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from domain.core.errors import BadInput

# ISO 4217 minor-unit exponents of the currencies we accept (active codes only).
_TWO_DECIMALS = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CNY COP CRC CUP CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK
    LBP LKR LRD LSL MAD MDL MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS
    SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD
    YER ZAR ZMW ZWG
"""
_NO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"

EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS.split(), 2),
    **dict.fromkeys(_NO_DECIMALS.split(), 0),
    **dict.fromkeys(_THREE_DECIMALS.split(), 3),
    "CLF": 4,
    "UYW": 4,
}


def exponent(currency: str) -> int:
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise BadInput(f"Unknown currency {currency!r}", field="currency") from None


def check_currency(currency: str) -> str:
    exponent(currency)
    return currency


# Amounts up to 10^15 - 1 major units: beyond any household, far inside a 128-bit integer.
MAX_INTEGER_DIGITS = 15


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    @classmethod
    def parse(cls, amount: Decimal | str, currency: str, *, field: str = "amount") -> Money:
        """Exact conversion from a decimal amount; refuses more decimals than the currency has.

        Done on the digits with Python integers, so no decimal context can round, overflow
        or underflow on the way.
        """
        places = exponent(currency)
        try:
            value = Decimal(amount)
        except (InvalidOperation, ValueError):
            raise BadInput(f"Not a decimal amount: {amount!r}", field=field) from None
        if not value.is_finite():
            raise BadInput("Amount must be a finite number", field=field)
        sign, digits, power = value.as_tuple()
        assert isinstance(power, int)
        while power < 0 and digits and digits[-1] == 0:  # 1.500 is 1.5
            digits, power = digits[:-1], power + 1
        if power < -places:
            raise BadInput(
                f"{currency} allows at most {places} decimal places, got {amount}", field=field
            )
        if any(digits) and len(digits) + power > MAX_INTEGER_DIGITS:
            raise BadInput("Amount is out of range", field=field)
        minor = int("".join(map(str, digits)) or "0") * 10 ** (power + places)
        return cls(-minor if sign else minor, currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, check_currency(currency))

    @property
    def amount(self) -> Decimal:
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"Currency mismatch: {self.currency} vs {other.currency}")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def convert(minor: int, currency: str, rate: Decimal, target: str) -> int:
    """Convert minor units at `rate` (target per unit of source), rounding half-even.

    Precise for any amount Money accepts times any rate the FX table accepts."""
    with localcontext() as context:
        context.prec = 60
        value = Decimal(minor).scaleb(-exponent(currency)) * rate
        quantum = Decimal(1).scaleb(-exponent(target))
        return int(value.quantize(quantum, rounding=ROUND_HALF_EVEN).scaleb(exponent(target)))
