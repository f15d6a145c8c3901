"""The demo household: two people, eight accounts and three years of everyday money.

Deterministic: one seeded generator walks the months in order, so the same anchor date
always produces the same data. Everything goes through the domain services (register,
invite, accounts, FX rates, `post_many`), so the demo exercises the real code paths.
"""

from __future__ import annotations

import calendar
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from types import MappingProxyType

from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.crypto import blind_index
from domain.core.db import create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.core.tenancy import Tenant
from domain.identity import service as identity
from domain.identity.repository import IdentityRepository
from domain.ledger import budgets, fx
from domain.ledger.accounts import create_account
from domain.ledger.models import CategoryKind
from domain.ledger.repository import LedgerRepository
from domain.ledger.transactions import SplitDraft, TransactionDraft, TransferDraft, post_many

DEMO_PASSWORD = "demo-password-1"
DEMO_USERS: tuple[tuple[str, str], ...] = (
    ("asha@demo.wealthwise.dev", "Asha Verma"),
    ("rohan@demo.wealthwise.dev", "Rohan Verma"),
)
WORKSPACE_NAME = "Verma household"
BASE_CURRENCY = "INR"
MONTHS = 36
SEED = 2026

_CENT = Decimal("0.01")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

Draft = TransactionDraft | TransferDraft


@dataclass(frozen=True)
class _AccountSpec:
    key: str
    name: str
    kind: str
    currency: str
    opening: str
    number: str
    institution: str


ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec(
        "hdfc", "HDFC salary account", "checking", "INR", "245000.00", "50100234567891", "HDFC Bank"
    ),
    _AccountSpec(
        "sbi", "SBI savings", "savings", "INR", "410000.00", "30987654321", "State Bank of India"
    ),
    _AccountSpec(
        "icici",
        "ICICI credit card",
        "credit_card",
        "INR",
        "0.00",
        "4315 XXXX XXXX 8842",
        "ICICI Bank",
    ),
    _AccountSpec("cash", "Cash wallet", "cash", "INR", "3500.00", "CASH-01", "Household cash"),
    _AccountSpec(
        "paytm",
        "Paytm wallet",
        "wallet",
        "INR",
        "1500.00",
        "9845012345@paytm",
        "Paytm Payments Bank",
    ),
    _AccountSpec(
        "home_loan", "HDFC home loan", "loan", "INR", "-2500000.00", "HL602718845", "HDFC Bank"
    ),
    _AccountSpec(
        "chase", "Chase checking", "checking", "USD", "2400.00", "XXXXXX4821", "JPMorgan Chase Bank"
    ),
    _AccountSpec(
        "zerodha",
        "Zerodha investments",
        "investment",
        "INR",
        "300000.00",
        "ZD4821",
        "Zerodha Broking",
    ),
)

_CATEGORIES = (
    "Salary",
    "Interest",
    "Dividends",
    "Other income",
    "Rent",
    "Utilities",
    "Maintenance",
    "Groceries",
    "Dining out",
    "Food delivery",
    "Fuel",
    "Rides",
    "Public transport",
    "Clothing",
    "Electronics",
    "Household",
    "Streaming",
    "Software",
    "Phone & internet",
    "Pharmacy",
    "Doctor",
    "Fitness",
    "Insurance",
    "Education",
    "Travel",
    "Entertainment",
    "Loan interest",
    "Fees & charges",
    "Gifts & donations",
)

# Monthly budgets (INR) on a few expense categories: some months land over, most under.
BUDGETS: tuple[tuple[str, str], ...] = (
    ("Groceries", "18000.00"),
    ("Dining out", "10000.00"),
    ("Food delivery", "7000.00"),
    ("Rides", "4500.00"),
    ("Streaming", "1000.00"),
)

# The home loan: 25 lakh over 20 years at 8.6% a year, a fixed EMI.
_LOAN_PRINCIPAL = Decimal("2500000.00")
_LOAN_RATE = Decimal("0.086")
_LOAN_MONTHS = 240
_SAVINGS_RATE = Decimal("0.027")  # SBI savings interest, credited quarterly


@dataclass(frozen=True)
class DemoHousehold:
    """What `seed_household` created (ids for tests and the CLI; counts for reports)."""

    workspace_id: uuid.UUID
    owner_id: uuid.UUID
    member_id: uuid.UUID
    accounts: Mapping[str, uuid.UUID]
    first_day: date
    anchor: date
    transactions: int
    fx_rates: int


def demo_anchor(settings: Settings) -> date:
    """The last day the demo data may reach (its month is the last of the 36)."""
    return settings.demo_anchor or date.today()


def first_month(anchor: date) -> date:
    """The first day of the first of the 36 months ending with the anchor's month."""
    year, month = divmod(anchor.year * 12 + anchor.month - 1 - (MONTHS - 1), 12)
    return date(year, month + 1, 1)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_EVEN)


def _round_to(value: Decimal, step: int) -> Decimal:
    return _cents((value / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * step)


def _emi(principal: Decimal, annual_rate: Decimal, months: int) -> Decimal:
    rate = annual_rate / 12
    growth = (1 + rate) ** months
    emi = (principal * rate * growth / (growth - 1)).quantize(Decimal(1), rounding=ROUND_CEILING)
    return _cents(emi)


class _Generator:
    """Walks the months in order and collects drafts; tracks balances to stay plausible."""

    def __init__(
        self,
        rng: random.Random,
        start: date,
        accounts: Mapping[str, uuid.UUID],
        categories: Mapping[str, uuid.UUID],
    ) -> None:
        self.rng = rng
        self.start = start
        self.accounts = accounts
        self.categories = categories
        self.drafts: list[Draft] = []
        self.rates: list[tuple[date, Decimal]] = []
        self.balance: dict[str, Decimal] = {spec.key: Decimal(spec.opening) for spec in ACCOUNTS}
        self.outflow: dict[str, Decimal] = {}
        self.card_spend = Decimal(0)
        self.card_due = Decimal(0)
        self.work_spend = Decimal(0)
        self.work_due = Decimal(0)
        self.loan_outstanding = _LOAN_PRINCIPAL
        self.emi = _emi(_LOAN_PRINCIPAL, _LOAN_RATE, _LOAN_MONTHS)
        self.rate_units = 831_250  # USD->INR in 1/10,000 rupee: 83.1250
        self.asha_salary = Decimal("185000.00")
        self.rohan_salary = Decimal("115000.00")
        self.rent = Decimal("42000.00")
        self.help_wage = Decimal("7000.00")
        self.school_fee = Decimal("48500.00")
        self.health_premium = Decimal("24800.00")
        # set per month
        self.index = 0
        self.year = start.year
        self.month = start.month
        self.last_day = 31

    # --- amounts, dates and references ---------------------------------------------------

    def amount(self, low: int, high: int) -> Decimal:
        """A random amount between two whole-unit bounds, with paise/cents."""
        return Decimal(self.rng.randint(low * 100, high * 100)).scaleb(-2)

    def whole(self, low: int, high: int, step: int = 1) -> Decimal:
        return Decimal(self.rng.randrange(low, high + 1, step)).quantize(_CENT)

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def day(self, number: int | None = None) -> date:
        if number is None:
            number = self.rng.randint(1, self.last_day)
        return date(self.year, self.month, min(number, self.last_day))

    def later(self, day: date, low: int, high: int) -> date:
        moved = day + timedelta(days=self.rng.randint(low, high))
        return moved if moved.month == day.month else self.day(self.last_day)

    def upi(self, payee: str, *, credit: bool = False) -> str:
        reference = self.rng.randint(400_000_000_000, 499_999_999_999)
        return f"UPI/{'CR' if credit else 'DR'}/{reference}/{payee}"

    def label(self, short: bool = False) -> str:
        name = _MONTH_NAMES[self.month - 1]
        return f"{name[:3] if short else name} {self.year}"

    # --- drafts ----------------------------------------------------------------------------

    def spend(
        self,
        key: str,
        day: date,
        amount: Decimal,
        category: str,
        payee: str,
        *,
        narration: str | None = None,
        notes: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        self.drafts.append(
            TransactionDraft(
                account_id=self.accounts[key],
                date=day,
                amount=-amount,
                category_id=self.categories[category],
                payee=payee,
                narration=narration,
                notes=notes,
                tags=tags,
            )
        )
        self._moved(key, -amount)
        if key == "icici":
            self.card_spend += amount
        if "work" in tags:
            self.work_spend += amount

    def receive(
        self,
        key: str,
        day: date,
        amount: Decimal,
        category: str,
        payee: str,
        *,
        narration: str | None = None,
        notes: str | None = None,
    ) -> None:
        self.drafts.append(
            TransactionDraft(
                account_id=self.accounts[key],
                date=day,
                amount=amount,
                category_id=self.categories[category],
                payee=payee,
                narration=narration,
                notes=notes,
            )
        )
        self._moved(key, amount)
        if key == "icici":
            self.card_spend -= amount

    def split(
        self,
        key: str,
        day: date,
        parts: tuple[tuple[str, Decimal, str], ...],
        payee: str,
        *,
        narration: str | None = None,
    ) -> None:
        self.drafts.append(
            TransactionDraft(
                account_id=self.accounts[key],
                date=day,
                splits=tuple(
                    SplitDraft(category_id=self.categories[category], amount=-amount, memo=memo)
                    for category, amount, memo in parts
                ),
                payee=payee,
                narration=narration,
            )
        )
        total = sum((amount for _, amount, _ in parts), Decimal(0))
        self._moved(key, -total)
        if key == "icici":
            self.card_spend += total

    def transfer(
        self,
        source: str,
        target: str,
        day: date,
        amount: Decimal,
        *,
        to_amount: Decimal | None = None,
        payee: str | None = None,
        narration: str | None = None,
        notes: str | None = None,
    ) -> None:
        self.drafts.append(
            TransferDraft(
                from_account_id=self.accounts[source],
                to_account_id=self.accounts[target],
                date=day,
                amount=amount,
                to_amount=to_amount,
                payee=payee,
                narration=narration,
                notes=notes,
            )
        )
        self._moved(source, -amount)
        self._moved(target, amount if to_amount is None else to_amount)

    def _moved(self, key: str, delta: Decimal) -> None:
        self.balance[key] += delta
        if delta < 0:
            self.outflow[key] = self.outflow.get(key, Decimal(0)) - delta

    def pay(
        self,
        method: str,
        day: date,
        amount: Decimal,
        category: str,
        payee: str,
        *,
        narration: str | None = None,
        notes: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        """Card, UPI from the salary account, the Paytm wallet or cash."""
        key = {"card": "icici", "upi": "hdfc", "paytm": "paytm", "cash": "cash"}[method]
        if method == "upi" and narration is None:
            narration = self.upi(payee)
        self.spend(key, day, amount, category, payee, narration=narration, notes=notes, tags=tags)

    def method(self, card: float, upi: float, paytm: float) -> str:
        return self.rng.choices(("card", "upi", "paytm"), weights=(card, upi, paytm))[0]

    # --- the months ----------------------------------------------------------------------

    def run(self) -> None:
        for index in range(MONTHS):
            year, month = divmod(self.start.year * 12 + self.start.month - 1 + index, 12)
            self.index, self.year, self.month = index, year, month + 1
            self.last_day = calendar.monthrange(self.year, self.month)[1]
            self.outflow = {}
            start_balance = dict(self.balance)
            self.fx_rate()
            self.income()
            self.housing()
            self.food()
            self.transport()
            self.subscriptions()
            self.health()
            self.shopping()
            self.family()
            self.money_moves()
            self.top_ups(start_balance)
            self.card_due, self.card_spend = self.card_spend, Decimal(0)
            self.work_due, self.work_spend = self.work_spend, Decimal(0)

    def fx_rate(self) -> None:
        if self.index:
            drift = self.rng.randint(-3_500, 4_500)
            self.rate_units = min(864_000, max(825_000, self.rate_units + drift))
        self.rates.append((self.day(1), Decimal(self.rate_units).scaleb(-4)))

    def income(self) -> None:
        if self.month == 4 and self.index:
            self.asha_salary = _round_to(
                self.asha_salary * (1 + Decimal(self.rng.randint(6, 11)) / 100), 500
            )
            self.rohan_salary = _round_to(
                self.rohan_salary * (1 + Decimal(self.rng.randint(5, 10)) / 100), 500
            )
        self.receive(
            "hdfc",
            self.day(1),
            self.asha_salary,
            "Salary",
            "Acme Technologies Pvt Ltd",
            narration=f"Salary for {self.label()}",
        )
        self.receive(
            "sbi",
            self.day(1),
            self.rohan_salary,
            "Salary",
            "Globex Analytics India Pvt Ltd",
            narration=f"NEFT salary {self.label(short=True)}",
        )
        if self.month == 3:
            bonus = _round_to(self.asha_salary * Decimal(self.rng.randint(80, 140)) / 100, 100)
            self.receive(
                "hdfc",
                self.day(self.last_day),
                bonus,
                "Salary",
                "Acme Technologies Pvt Ltd",
                narration=f"Annual performance bonus FY{self.year - 1}-{self.year % 100:02d}",
            )
        if self.work_due:
            self.receive(
                "hdfc",
                self.day(7),
                self.work_due,
                "Other income",
                "Acme Technologies Pvt Ltd",
                narration="Expense reimbursement",
            )
        if self.month in (6, 11):
            for payee in self.rng.sample(
                ["Infosys Ltd", "ITC Ltd", "HDFC Bank Ltd", "Coal India Ltd", "TCS Ltd"], 2
            ):
                self.receive(
                    "zerodha",
                    self.day(self.rng.randint(8, 26)),
                    self.amount(350, 3_200),
                    "Dividends",
                    payee,
                    narration="Dividend credit",
                )
        if self.month in (3, 6, 9, 12):
            interest = _cents(self.balance["sbi"] * _SAVINGS_RATE / 4)
            self.receive(
                "sbi",
                self.day(self.last_day),
                interest,
                "Interest",
                "State Bank of India",
                narration="Savings interest credit",
            )

    def housing(self) -> None:
        notes = None
        if self.index and self.index % 12 == 0:
            self.rent = _round_to(self.rent * Decimal("1.05"), 500)
            self.help_wage += 500
            notes = f"Lease renewed: rent revised to INR {self.rent:,.2f}"
        self.spend(
            "hdfc",
            self.day(5),
            self.rent,
            "Rent",
            "Prestige Estates",
            narration=f"Rent for {self.label()}",
            notes=notes,
        )
        self.pay("upi", self.day(1), self.help_wage, "Household", "Lakshmi (house help)")
        summer = self.month in (3, 4, 5, 6)
        self.spend(
            "hdfc",
            self.day(self.rng.randint(10, 14)),
            self.amount(2_600, 3_900) if summer else self.amount(1_300, 2_400),
            "Utilities",
            "BESCOM",
            narration=f"BESCOM electricity bill {self.label(short=True)}",
        )
        self.spend(
            "hdfc",
            self.day(self.rng.randint(16, 20)),
            self.amount(260, 640),
            "Utilities",
            "BWSSB",
            narration="Water bill",
        )
        if self.index % 2 == 0:
            price = (Decimal("903.00"), Decimal("855.50"), Decimal("853.00"))[self.index // 12]
            self.pay("paytm", self.day(), price, "Utilities", "Indane Gas", narration="LPG refill")
        if self.chance(0.15):
            self.pay(
                self.method(0, 1, 1),
                self.day(),
                self.whole(400, 2_500, 100) - 1,
                "Maintenance",
                "Urban Company",
                narration=self.rng.choice(["AC service", "Plumber visit", "Deep cleaning"]),
            )

    def food(self) -> None:
        rng = self.rng
        for week in range(5):
            day = 1 + 7 * week + rng.randint(0, 2)
            if day > self.last_day:
                break
            if week == 0:
                payee = rng.choice(["DMart", "BigBasket"])
                self.split(
                    "hdfc" if payee == "DMart" else "icici",
                    self.day(day),
                    (
                        ("Groceries", self.amount(2_400, 5_800), "Staples, vegetables and dairy"),
                        ("Household", self.amount(300, 1_600), "Cleaning supplies and toiletries"),
                    ),
                    payee,
                    narration="Monthly stock-up",
                )
                continue
            payee = rng.choice(["BigBasket", "DMart", "Nature's Basket", "Reliance Fresh"])
            low, high, method = {
                "BigBasket": (900, 3_800, "card"),
                "DMart": (1_200, 4_200, "upi"),
                "Nature's Basket": (700, 2_900, "card"),
                "Reliance Fresh": (400, 1_900, "upi"),
            }[payee]
            self.pay(method, self.day(day), self.amount(low, high), "Groceries", payee)
        for _ in range(rng.randint(3, 6)):
            payee = rng.choice(["Zepto", "Blinkit", "Swiggy Instamart"])
            self.pay(self.method(1, 2, 3), self.day(), self.amount(150, 900), "Groceries", payee)
        for _ in range(rng.randint(3, 6)):
            self.pay("cash", self.day(), self.whole(120, 650, 10), "Groceries", "Vegetable vendor")
        self.pay(
            "paytm",
            self.day(3),
            self.amount(1_650, 2_350),
            "Groceries",
            "Country Delight",
            narration="Milk subscription",
        )
        for _ in range(rng.randint(2, 4)):
            payee = rng.choice(["Truffles", "Toit", "Meghana Foods", "Truffles", "Karavalli"])
            low, high = {
                "Truffles": (900, 2_800),
                "Toit": (1_800, 5_600),
                "Meghana Foods": (700, 2_200),
                "Karavalli": (3_500, 8_500),
            }[payee]
            self.pay("card", self.day(), self.amount(low, high), "Dining out", payee)
        if self.chance(0.15):
            self.pay(
                "card",
                self.day(rng.randint(8, 26)),
                self.amount(4_500, 9_800),
                "Dining out",
                "Toit",
                narration="Team dinner",
                notes="Reimbursable: submitted to Acme expenses",
                tags=("work",),
            )
        for _ in range(rng.randint(3, 7)):
            payee = rng.choice(["Starbucks", "Third Wave Coffee", "Chai Point"])
            low, high = {
                "Starbucks": (280, 950),
                "Third Wave Coffee": (220, 720),
                "Chai Point": (90, 320),
            }[payee]
            method = self.method(1, 1, 2)
            self.pay(method, self.day(), self.amount(low, high), "Dining out", payee)
        for _ in range(rng.randint(6, 12)):
            payee = rng.choice(["Swiggy", "Zomato"])
            self.pay(
                self.method(3, 2, 5), self.day(), self.amount(180, 1_250), "Food delivery", payee
            )
        if self.chance(0.15):
            self.receive(
                "hdfc",
                self.day(),
                self.amount(150, 600),
                "Food delivery",
                "Swiggy",
                narration=self.upi("Swiggy refund", credit=True),
            )

    def transport(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(7, 13)):
            payee = rng.choice(["Uber", "Ola"])
            self.pay(self.method(3, 2, 5), self.day(), self.amount(110, 640), "Rides", payee)
        if self.chance(0.35):
            work = self.chance(0.5)
            self.pay(
                "card",
                self.day(),
                self.amount(820, 1_480),
                "Rides",
                rng.choice(["Uber", "Ola"]),
                narration="Ride to airport",
                tags=("work",) if work else (),
            )
        for _ in range(rng.randint(1, 4)):
            self.pay("cash", self.day(), self.whole(60, 240, 10), "Rides", "Auto rickshaw")
        self.pay(
            "paytm",
            self.day(rng.randint(1, 4)),
            Decimal("500.00"),
            "Public transport",
            "Namma Metro",
            narration="Metro card recharge",
        )
        for _ in range(rng.randint(2, 3)):
            payee = "Indian Oil" if self.chance(0.75) else "Bharat Petroleum"
            self.pay("card", self.day(), self.amount(1_500, 3_200), "Fuel", payee)
        if self.month == 8:
            self.pay(
                "card",
                self.day(rng.randint(2, 12)),
                self.amount(12_800, 15_500),
                "Insurance",
                "ACKO General Insurance",
                narration="Car insurance renewal",
            )

    def subscriptions(self) -> None:
        self.pay("card", self.day(7), Decimal("649.00"), "Streaming", "Netflix")
        self.pay("card", self.day(12), Decimal("119.00"), "Streaming", "Spotify")
        if self.month == 9:
            self.pay(
                "card",
                self.day(21),
                Decimal("1499.00"),
                "Streaming",
                "Amazon Prime",
                narration="Prime annual membership",
            )
        self.spend(
            "hdfc",
            self.day(8),
            Decimal("999.00"),
            "Phone & internet",
            "Jio Fiber",
            narration="Jio Fiber monthly plan",
        )
        self.spend(
            "sbi",
            self.day(22),
            Decimal("599.00"),
            "Phone & internet",
            "Airtel",
            narration="Airtel postpaid auto-debit",
        )
        self.spend(
            "chase", self.day(14), Decimal("2.99"), "Software", "iCloud", narration="iCloud+"
        )
        self.spend("chase", self.day(20), Decimal("10.00"), "Software", "Notion")

    def health(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(0, 2)):
            payee = rng.choice(["Apollo Pharmacy", "MedPlus"])
            self.pay(self.method(1, 1, 0), self.day(), self.amount(180, 1_900), "Pharmacy", payee)
        if self.chance(0.2):
            self.pay("upi", self.day(), self.whole(800, 1_500, 100), "Doctor", "Manipal Hospitals")
        if self.chance(0.15):
            self.pay(
                "upi",
                self.day(),
                self.whole(700, 1_200, 100),
                "Doctor",
                "Rainbow Children's Hospital",
                tags=("kids",),
            )
        if self.index % 3 == 0:
            self.pay(
                "card",
                self.day(rng.randint(1, 5)),
                Decimal("5999.00"),
                "Fitness",
                "Cult.fit",
                narration="cultpass ELITE, 3 months",
            )

    def shopping(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(0, 4)):
            day = self.day()
            amount = self.amount(199, 4_999)
            category = "Household" if self.chance(0.7) else "Electronics"
            order = f"408-{rng.randint(1_000_000, 9_999_999)}-{rng.randint(1_000_000, 9_999_999)}"
            self.pay("card", day, amount, category, "Amazon", narration=f"Order {order}")
            if self.chance(0.18):
                self.receive(
                    "icici",
                    self.later(day, 3, 8),
                    amount,
                    category,
                    "Amazon",
                    narration=f"Refund for order {order}",
                )
        if self.chance(0.45):
            day = self.day()
            amount = self.amount(699, 5_999)
            self.pay("card", day, amount, "Clothing", "Myntra")
            if self.chance(0.25):
                self.receive(
                    "icici",
                    self.later(day, 4, 10),
                    amount,
                    "Clothing",
                    "Myntra",
                    narration="Refund - return picked up",
                )
        if self.chance(0.07):
            self.pay(
                "card",
                self.day(),
                self.amount(3_999, 68_999),
                "Electronics",
                "Croma",
                notes="Extended warranty: 2 years" if self.chance(0.5) else None,
            )
        if self.chance(0.3):
            self.pay(
                "card", self.day(), self.amount(499, 3_499), "Clothing", "FirstCry", tags=("kids",)
            )
        if self.month == 10:
            self.pay(
                "card",
                self.day(rng.randint(10, 25)),
                self.amount(3_500, 9_000),
                "Clothing",
                "Fabindia",
                narration="Diwali shopping",
            )
            self.pay(
                "card",
                self.day(rng.randint(10, 25)),
                self.amount(4_000, 12_000),
                "Gifts & donations",
                "Haldiram's",
                narration="Diwali gifts",
            )

    def family(self) -> None:
        rng = self.rng
        if self.month == 4 and self.index:
            self.school_fee = _round_to(self.school_fee * Decimal("1.08"), 100)
        if self.month in (1, 4, 7, 10):
            self.spend(
                "sbi",
                self.day(10),
                self.school_fee,
                "Education",
                "Greenwood High School",
                narration=f"Term fee {self.label()}",
                tags=("kids",),
            )
        if self.month == 5:
            self.pay(
                "upi",
                self.day(rng.randint(2, 8)),
                self.whole(5_500, 8_500, 500),
                "Education",
                "Little Explorers",
                narration="Summer camp",
                tags=("kids",),
            )
        if self.month == 6:
            if self.index >= 12:
                self.health_premium = _round_to(self.health_premium * Decimal("1.06"), 10)
            self.spend(
                "sbi",
                self.day(15),
                self.health_premium,
                "Insurance",
                "Star Health",
                narration="Family floater health insurance renewal",
            )
        if self.month == 1:
            self.spend(
                "sbi",
                self.day(18),
                Decimal("18540.00"),
                "Insurance",
                "HDFC Life",
                narration="Term insurance premium",
            )
        if self.chance(0.3):
            self.pay(
                "upi",
                self.day(),
                self.whole(1_000, 5_000, 500),
                "Gifts & donations",
                rng.choice(["Akshaya Patra Foundation", "GiveIndia"]),
                notes="80G receipt emailed" if self.chance(0.5) else None,
            )
        if self.chance(0.25):
            payee = rng.choice(["Archies", "Ferns N Petals"])
            self.pay("card", self.day(), self.amount(600, 3_500), "Gifts & donations", payee)
        for _ in range(rng.randint(0, 2)):
            self.pay("card", self.day(), self.amount(450, 1_800), "Entertainment", "BookMyShow")
        if self.month in (5, 12):
            self.vacation()
        if self.chance(0.12):
            self.pay(
                "card",
                self.day(),
                self.amount(5_500, 14_000),
                "Travel",
                rng.choice(["IndiGo", "Air India"]),
                narration="Client visit flight",
                notes="Reimbursable",
                tags=("work",),
            )
        if self.month == 3:
            self.pay(
                "card",
                self.day(rng.randint(3, 9)),
                Decimal("588.82"),
                "Fees & charges",
                "ICICI Bank",
                narration="Card annual fee 499.00 + GST",
            )
        if self.month == 7:
            self.spend(
                "hdfc",
                self.day(rng.randint(3, 9)),
                Decimal("236.00"),
                "Fees & charges",
                "HDFC Bank",
                narration="Debit card annual fee 200.00 + GST",
            )
        if self.month in (3, 6, 9, 12):
            self.spend(
                "sbi",
                self.day(28),
                Decimal("17.70"),
                "Fees & charges",
                "State Bank of India",
                narration="SMS alert charges",
            )

    def vacation(self) -> None:
        rng = self.rng
        place = rng.choice(["Goa", "Coorg", "Kerala", "Jaipur", "Manali", "Pondicherry", "Udaipur"])
        day = rng.randint(5, 20)
        tags = ("vacation",)
        self.pay(
            "card",
            self.day(day - 4),
            self.amount(14_000, 34_000),
            "Travel",
            rng.choice(["IndiGo", "Air India", "Vistara"]),
            narration=f"Flights to {place}",
            notes=f"{place} trip, 4 passengers",
            tags=tags,
        )
        self.pay(
            "card",
            self.day(day - 3),
            self.amount(12_000, 38_000),
            "Travel",
            rng.choice(["MakeMyTrip", "Taj Hotels", "Booking.com"]),
            narration=f"Hotel in {place}",
            tags=tags,
        )
        for offset in range(rng.randint(2, 4)):
            self.pay(
                "card",
                self.day(day + offset),
                self.amount(900, 4_800),
                "Dining out",
                f"Restaurant in {place}",
                tags=tags,
            )
        if self.month == 12 and self.chance(0.5):
            self.spend(
                "chase",
                self.day(rng.randint(2, 10)),
                self.amount(320, 880),
                "Travel",
                "Airbnb",
                narration="Airbnb booking",
                notes="Booked on the US card",
                tags=tags,
            )

    def money_moves(self) -> None:
        label = self.label(short=True)
        interest = _cents(self.loan_outstanding * _LOAN_RATE / 12)
        principal = self.emi - interest
        self.loan_outstanding -= principal
        self.transfer(
            "hdfc",
            "home_loan",
            self.day(10),
            principal,
            payee="HDFC Bank",
            narration=f"Home loan EMI {label} (principal)",
        )
        self.spend(
            "hdfc",
            self.day(10),
            interest,
            "Loan interest",
            "HDFC Bank",
            narration=f"Home loan EMI {label} (interest)",
        )
        if self.card_due > 0:
            self.transfer(
                "hdfc",
                "icici",
                self.day(18),
                self.card_due,
                payee="ICICI Bank Credit Card",
                narration=f"Card bill payment {label}",
            )
        self.transfer("hdfc", "sbi", self.day(2), Decimal("15000.00"), narration="Monthly savings")
        self.transfer(
            "sbi",
            "zerodha",
            self.day(7),
            Decimal("50000.00"),
            payee="Zerodha Broking",
            narration="SIP: Nifty 50 index fund",
        )
        self.transfer(
            "hdfc",
            "zerodha",
            self.day(7),
            Decimal("20000.00"),
            payee="Zerodha Broking",
            narration="SIP: flexi-cap fund",
        )
        if self.month == 3:
            prepayment = Decimal("200000.00")
            self.loan_outstanding -= prepayment
            self.transfer(
                "sbi",
                "home_loan",
                self.day(self.rng.randint(20, 27)),
                prepayment,
                payee="HDFC Bank",
                narration="Home loan part-prepayment",
                notes="Prepaid before the financial year ends; EMI unchanged, tenure shorter",
            )
        if self.index % 6 == 1:
            sent = Decimal("60000.00")
            rate = self.rates[-1][1] * Decimal("1.011")  # the bank's margin on the rate
            self.transfer(
                "hdfc",
                "chase",
                self.day(16),
                sent,
                to_amount=(sent / rate).quantize(_CENT, rounding=ROUND_DOWN),
                payee="HDFC Bank",
                narration="Outward remittance (LRS) to Chase",
                notes="For US subscriptions and travel" if self.index == 1 else None,
            )

    def top_ups(self, start_balance: Mapping[str, Decimal]) -> None:
        """Fund the wallet and the cash on the 1st so neither runs dry during the month."""
        for key, step, floor in (("paytm", 1_000, 300), ("cash", 500, 200)):
            needed = floor + self.outflow.get(key, Decimal(0)) - start_balance[key]
            if needed <= 0:
                continue
            amount = (needed / step).quantize(Decimal(1), rounding=ROUND_CEILING) * step
            if key == "paytm":
                self.transfer(
                    "hdfc", "paytm", self.day(1), _cents(amount), narration="Add money to wallet"
                )
            else:
                self.transfer(
                    "hdfc",
                    "cash",
                    self.day(1),
                    _cents(amount),
                    payee="HDFC Bank ATM",
                    narration="ATM withdrawal",
                )


def _plan(
    anchor: date, accounts: Mapping[str, uuid.UUID], categories: Mapping[str, uuid.UUID]
) -> tuple[list[Draft], list[tuple[date, Decimal]]]:
    """The drafts (by date) and USD->INR rates of the 36 months, none after the anchor."""
    generator = _Generator(random.Random(SEED), first_month(anchor), accounts, categories)
    generator.run()
    drafts = sorted((d for d in generator.drafts if d.date <= anchor), key=lambda d: d.date)
    return drafts, [(day, rate) for day, rate in generator.rates if day <= anchor]


async def _category_ids(session: AsyncSession, workspace_id: uuid.UUID) -> dict[str, uuid.UUID]:
    found = {
        category.name: category.id
        for category in await LedgerRepository(session, workspace_id).categories()
        if category.kind != CategoryKind.EXCHANGE.value
    }
    missing = [name for name in _CATEGORIES if name not in found]
    if missing:
        raise LookupError(f"The default categories lack {', '.join(missing)}")
    return found


async def prepare_ledger(
    session: AsyncSession, tenant: Tenant, anchor: date
) -> tuple[dict[str, uuid.UUID], list[Draft], int]:
    """Open the demo accounts, FX rates and budgets in `tenant`; return the accounts, the
    planned transactions (not yet posted) and the number of rates."""
    start = first_month(anchor)
    accounts: dict[str, uuid.UUID] = {}
    for spec in ACCOUNTS:
        created = await create_account(
            session,
            tenant,
            name=spec.name,
            kind=spec.kind,
            currency=spec.currency,
            opening_balance=spec.opening,
            opening_date=start,
            number=spec.number,
            institution=spec.institution,
        )
        accounts[spec.key] = created.id
    category_ids = await _category_ids(session, tenant.workspace_id)
    drafts, rates = _plan(anchor, accounts, category_ids)
    for day, rate in rates:
        await fx.set_rate(session, tenant, base="USD", quote=BASE_CURRENCY, on=day, rate=str(rate))
    for name, amount in BUDGETS:
        await budgets.set_budget(session, tenant, category_ids[name], amount)
    return accounts, list(drafts), len(rates)


async def seed_household(
    session: AsyncSession, keyring: Keyring, *, anchor: date
) -> DemoHousehold | None:
    """Create the demo household in `session` (the caller commits); None if it exists."""
    (asha_email, asha_name), (rohan_email, rohan_name) = DEMO_USERS
    index = blind_index(await keyring.index_key(session), asha_email)
    if await IdentityRepository(session).user_by_email_index(index) is not None:
        return None
    asha = await identity.register(
        session,
        keyring,
        email=asha_email,
        password=DEMO_PASSWORD,
        name=asha_name,
        workspace_name=WORKSPACE_NAME,
        base_currency=BASE_CURRENCY,
    )
    rohan = await identity.register(
        session, keyring, email=rohan_email, password=DEMO_PASSWORD, name=rohan_name
    )
    tenant = await identity.open_tenant(session, keyring, asha.id, None)
    workspace_id = tenant.workspace_id
    issued = await identity.invite_member(session, keyring, tenant, rohan_email, "member")
    await identity.accept_invitation(session, keyring, rohan.id, issued.token)

    start = first_month(anchor)
    accounts, drafts, rates = await prepare_ledger(session, tenant, anchor)
    posted = await post_many(session, tenant, drafts)
    return DemoHousehold(
        workspace_id=workspace_id,
        owner_id=asha.id,
        member_id=rohan.id,
        accounts=MappingProxyType(accounts),
        first_day=start,
        anchor=anchor,
        transactions=posted,
        fx_rates=rates,
    )


async def seed_demo(settings: Settings) -> bool:
    """Load the demo household once (idempotent); True if this call created it."""
    engine = create_engine(settings)
    keyring = Keyring.from_settings(settings)
    try:
        async with unit_of_work(engine) as session:
            await keyring.ensure_system_keys(session)
        async with unit_of_work(engine) as session:
            household = await seed_household(session, keyring, anchor=demo_anchor(settings))
        return household is not None
    finally:
        await engine.dispose()
