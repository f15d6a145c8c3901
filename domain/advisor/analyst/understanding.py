"""Reading a question: which tool answers it, with which arguments.

`understand(question, today=..., vocabulary=...)` returns a `Plan`. It is pure and
deterministic (no model, no I/O): the same question, day and vocabulary give the same plan.
Keyword rules, not a classifier: the questions an advisor gets about one household's money
are few in kind, and rules can be read, tested and explained.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from domain.advisor.analyst.amounts import (
    Amount,
    Duration,
    Percent,
    find_amounts,
    find_durations,
    find_percents,
)
from domain.advisor.analyst.names import Name, NameMatch, Vocabulary
from domain.advisor.analyst.periods import NUMBER_WORDS, Period, add_months, find_periods
from domain.core.money import exponent

MAX_QUESTION_CHARS = 500  # longer text is read up to here (and the plan says so)


class Intent(enum.StrEnum):
    """What the question asks; every intent but CANNOT_ANSWER is a tool of the contract."""

    SPENDING = "spending"
    COMPARE_PERIODS = "compare_periods"
    CASH_FLOW = "cash_flow"
    NET_WORTH = "net_worth"
    RECURRING_PAYMENTS = "recurring_payments"
    BUDGET_STATUS = "budget_status"
    FUTURE_VALUE = "future_value"
    LOAN_EMI = "loan_emi"
    GOAL_SAVING = "goal_saving"
    SEARCH_TRANSACTIONS = "search_transactions"
    CANNOT_ANSWER = "cannot_answer"


@dataclass(frozen=True)
class PlannedCall:
    """One tool call: `name` and `arguments` exactly as the tool's input schema takes them."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """What the analyst understood of a question.

    - `calls`: the tool calls to run, in order (empty when the question cannot be answered
      or lacks a figure: see `missing`);
    - `periods`: the periods the calls use, each with the words that named it (or a note
      that it was a default);
    - `matched_names`: the workspace names found in the question and how they were found;
    - `notes`: assumptions the answer should state ("no rate given: 0% assumed");
    - `missing`: what a calculation still needs ("the loan amount"), for a follow-up;
    - `suggestions`: questions the analyst can answer, built from the workspace's own names
      (always filled for CANNOT_ANSWER and for plans with `missing`).
    """

    question: str
    intent: Intent
    calls: tuple[PlannedCall, ...] = ()
    periods: tuple[Period, ...] = ()
    matched_names: tuple[NameMatch, ...] = ()
    notes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()


def _cue(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Text that tries to steer the advisor, reach beyond this workspace or change data.
_INJECTION = _cue(
    # steering the advisor
    r"\b(?:ignore|disregard|forget|override|bypass)\b.{0,40}\b(?:instructions?|prompts?|rules?"
    r"|guardrails?|context|above|previous)\b|\bsystem\s+prompt\b|\bjailbreak|\byou\s+are\s+now\b"
    r"|\bpretend\b|\bact\s+as\b|\bdeveloper\s+mode\b"
    # reaching beyond this workspace (its own members are fine: "what did all members spend")
    r"|\b(?:all|other|every|another)\s+(?:the\s+)?(?:users?|workspaces?|customers?|households?"
    r"|tenants?)\b"
    # asking for secrets ("what did we pay for the password manager" is fine)
    r"|\b(?:reveal|show|print|list|dump|give|tell|leak|display|output|send|expose)\b.{0,40}"
    r"\b(?:passwords?|api[\s_-]?keys?|credentials?|secrets?|tokens?|encryption\s+keys?"
    r"|private\s+keys?|prompt)\b"
    # SQL
    r"|\b(?:drop|truncate|alter)\s+table\b|\bdelete\s+from\b|\binsert\s+into\b|\bselect\s+\*"
)
# Requests to change the ledger; the advisor only reads it.
_WRITE = _cue(
    r"^\W*(?:please\s+|can\s+you\s+|could\s+you\s+)?(?:"
    r"(?:delete|remove|cancel|edit|update|rename|recategori[sz]e|categori[sz]e|create|add|change"
    r"|mark|split|merge|undo)\s+(?!up\b)(?:[\w'-]+\s+){0,4}?(?:transactions?|payments?|accounts?"
    r"|categor(?:y|ies)|budgets?|entry|entries|records?|subscriptions?|transfers?|tags?|notes?)\b"
    r"|(?:transfer|send|move|pay)\s+(?:\S+\s+){0,3}?(?:to|into|from)\b"
    r"|make\s+a\s+(?:payment|transfer))"
)
_LOAN = _cue(r"\b(?:emis?|equated\s+monthly|loans?|mortgages?|amorti[sz]ation|borrow(?:ing)?)\b")
_GOAL = _cue(
    r"\b(?:reach|goal|target|accumulate|corpus|save\s+up|build\s+up|to\s+have|need\s+to\s+save"
    r"|(?:should|must|do|would)\s+we\s+(?:need\s+to\s+)?(?:save|invest|put\s+aside|set\s+aside))\b"
)
_FUTURE = _cue(
    r"\b(?:save|saving|invest|investing|put\s+aside|set\s+aside|sips?|deposit|future\s+value"
    r"|grow|compound(?:ing|ed)?|will\s+we\s+have|would\s+we\s+have|end\s+up\s+with)\b"
)
_RECURRING = _cue(
    r"\b(?:subscriptions?|recurring|standing\s+instructions?|auto[\s-]?debits?|autopay"
    r"|mandates?|regular\s+payments?|repeat(?:ing)?\s+payments?|memberships?"
    r"|(?:pay|paying)\s+(?:for\s+)?(?:every|each)\s+month|monthly\s+bills)\b"
)
_BUDGET = _cue(r"\b(?:budgets?|budgeted|over\s*spen[dt]|over\s+budget|under\s+budget|on\s+track)\b")
_NET_WORTH = _cue(
    r"\b(?:net\s*worth|worth|balances?|assets|liabilities|how\s+much\s+(?:money\s+)?do\s+we\s+have"
    r"|how\s+much\s+is\s+(?:in|left)|how\s+much\s+(?:do\s+)?we\s+owe|outstanding"
    r"|what(?:'s|\s+is|\s+do\s+we\s+have)\s+in)\b"
)
_CASH_FLOW = _cue(
    r"\b(?:cash\s*flows?|savings?\s+rate|income|earn|earned|earning|earnings|surplus|inflows?"
    r"|outflows?|how\s+much\s+(?:did|do|have)\s+we\s+(?:save|saved)|did\s+we\s+save"
    r"|we\s+saved|net\s+savings?)\b"
)
# Unmistakable even when the words also name a category ("income" is "Other income").
_CASH_FLOW_PLAIN = _cue(
    r"\b(?:cash\s*flows?|savings?\s+rate|income\s+(?:vs\.?|versus|and|against)\s+expen\w*"
    r"|net\s+savings?|surplus)\b"
)
_COMPARE = _cue(
    r"\b(?:compare|compared|comparing|comparison|vs\.?|versus|against|than|difference|differ"
    r"|changed?|increased?|decreased?|(?:go|goes|gone|went)\s+(?:up|down)|rise|rose|risen"
    r"|higher|lower)\b"
)
_SPENDING = _cue(
    r"\b(?:spend|spent|spending|spends|expenses?|expenditure|costs?|cost\s+us|paid|pay\s+(?:for|on|to)"
    r"|outgoings?|where\s+(?:does|did|do)\s+(?:our|the|my)\s+money\s+go|biggest|largest"
    r"|breakdown|top\s+(?:\d+\s+)?(?:categories|payees|merchants)"
    r"|(?:went|goes|go)\s+(?:to|on|into|towards))\b"
)
_SEARCH = _cue(
    r"\b(?:show|list|find|search|look\s+up|when\s+did|which|transactions?|payments?|orders?"
    r"|purchases?|bought|receipts?|refunds?|charges?|bills?|trips?|rides?|visits?)\b"
)
_GROUP_PAYEE = _cue(
    r"\bby\s+(?:payee|merchant|shop|store|vendor|brand)s?\b|\b(?:which|what|top)\s+(?:\d+\s+)?"
    r"(?:payees|merchants|shops|stores|vendors|brands)\b|\bwhere\s+(?:did|do|does)\s+we"
    r"\s+(?:spend|shop|buy|eat)\b"
)
_GROUP_ACCOUNT = _cue(r"\bby\s+account\b|\bwhich\s+(?:accounts?|cards?)\b|\bper\s+account\b")
_GROUP_MONTH = _cue(
    r"\b(?:by|per|each|every)\s+month\b|\bmonth[\s-]+(?:by|on)[\s-]+month\b|\bmonthly\b"
    r"|\btrend\b|\bover\s+time\b"
)
_TOP = _cue(
    r"\b(?:top|biggest|largest|highest)\s+(?P<count>\d{1,2}|" + "|".join(NUMBER_WORDS) + r")\b"
)
_HISTORY = _cue(r"\b(?:history|trend|changed?|grown|grew|over\s+(?:the\s+)?(?:last|past))\b")
_MONTHLY_AFTER = _cue(
    r"^\s*(?:rupees?|rs\.?|inr|dollars?)?\s*(?:(?:a|per|each|every)\s+month\b|/\s*(?:month|mo)\b"
    r"|monthly\b|pm\b|p\.m\.|per\s+mensem\b|in\s+(?:a\s+)?sip\b)"
)
_MONTHLY_BEFORE = _cue(
    r"(?:monthly|sip\s+of|sip|every\s+month|each\s+month|a\s+month|per\s+month)\s*(?:of\s+)?"
    r"(?:₹|rs\.?|inr|\$)?\s*$"
)
_YEARLY_AFTER = _cue(
    r"^\s*(?:rupees?|rs\.?|inr|dollars?)?\s*(?:(?:a|per|each|every)\s+year\b|/\s*(?:year|yr)\b"
    r"|yearly\b|annually\b|p\.a\.|per\s+annum\b)"
)
_LUMP_BEFORE = _cue(
    r"(?:already\s+(?:have|saved|got|hold)|have\s+already(?:\s+saved)?|currently\s+(?:have|hold)"
    r"|existing|initial|lump\s*-?sum|one[\s-]time|starting\s+with|start\s+with|we\s+have"
    r"|savings\s+of|corpus\s+of|saved\s+so\s+far)\s*(?:of\s+|about\s+|around\s+)?"
    r"(?:₹|rs\.?|inr|\$)?\s*$"
)
_LUMP_AFTER = _cue(
    r"^\s*(?:rupees?|rs\.?|inr)?\s*(?:today|now|upfront|up\s+front|as\s+a\s+lump|lump\s*-?sum"
    r"|one[\s-]time|already|saved\s+(?:already|so\s+far)|in\s+savings)\b"
)
_INVEST_VERB = _cue(r"\b(?:invest|deposit|put)\b")
_AT_RATE = _cue(
    r"\b(?:at|@|rate\s+of|return\s+of|returns?\s+of|interest\s+of)\s*(?P<value>\d{1,2}(?:\.\d+)?)"
    r"(?!\s*(?:k|l|lakhs?|lacs?|cr|crores?|%|\d|years?|months?))\b"
)
_SEARCH_FILLER = _cue(
    r"^\W*(?:(?:please|can\s+you|could\s+you)\s+)?(?:show(?:\s+me)?|list|find|search(?:\s+for)?"
    r"|look\s+up|give\s+me|get|pull\s+up|display)?\s*(?:me\s+)?(?:all\s+)?(?:(?:of\s+)?(?:our|my|the)\s+)?"
    r"(?:transactions?\s+(?:for|with|about|of|at|to|from|on)\s+)?"
)
_SEARCH_COUNT = _cue(
    r"\b(?:the\s+)?(?:last|latest|recent|top|first)\s+(?P<count>\d{1,2})\b"
    r"(?!\s*(?:days?|weeks?|months?|quarters?|years?)\b)"
)
# The object of "spent on X" / "at X", to say so when X names nothing in the workspace.
_OBJECT = _cue(
    r"\b(?:on|at)\s+(?:the\s+|our\s+|my\s+)?(?P<object>[^\W\d][\w'&\s-]*?)\s*"
    r"(?=\b(?:in|during|last|this|since|between|from|over|for|by|per|each|vs|versus|compared"
    r"|and|so\s+far)\b|[?.!,;]|$)"
)
_HOW_MUCH = _cue(r"\bhow\s+much\b")
_NAMES_AGAINST = _cue(
    r"\s*(?:,|vs\.?|versus|or|against|and|than(?:\s+(?:on|at|for))?"
    r"|compared\s+(?:to|with)(?:\s+(?:on|at|for))?)\s*"
)
_INCOME_WORDS = re.compile(r"\b(?:salary|income|interest|dividend|refund)", re.IGNORECASE)


def understand(
    question: str,
    *,
    today: date,
    vocabulary: Vocabulary | Iterable[Name | tuple[Any, str, str]],
    currency: str = "INR",
) -> Plan:
    """Plan the tool calls that answer `question` for a workspace whose names are
    `vocabulary` and whose base currency is `currency`, on the day `today`."""
    names = vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary(vocabulary)
    return _Reader(question, today, names, currency).plan()


class _Reader:
    """The facts of one question, read once, and the rules that turn them into a plan."""

    def __init__(self, question: str, today: date, names: Vocabulary, currency: str) -> None:
        self.question = question
        self.notes: list[str] = []
        text = " ".join(question.split())
        if len(text) > MAX_QUESTION_CHARS:
            text = text[:MAX_QUESTION_CHARS]
            self.notes.append(f"Only the first {MAX_QUESTION_CHARS} characters were read.")
        self.text = text
        self.today = today
        self.names = names
        self.currency = currency
        self.found_periods = find_periods(text, today)
        self.percents: list[Percent] = find_percents(text)
        self.durations: list[Duration] = find_durations(text)
        number_spans = [(p.start, p.end) for p in self.percents] + [
            (d.start, d.end) for d in self.durations
        ]
        self.amounts: list[Amount] = find_amounts(text, skip=number_spans)
        period_spans = [(start, end) for start, end, _ in self.found_periods]
        self.matches = _loan_interest(
            names.find(text, skip=period_spans + number_spans), text, names
        )
        self.periods = [period for _, _, period in self.found_periods]

    # --- the decision -----------------------------------------------------------------

    def plan(self) -> Plan:
        text = self.text
        if _INJECTION.search(text):
            return self._cannot(
                "The question asks for something outside this workspace's money "
                "(instructions, other users or system data); the advisor only reads "
                "this workspace's ledger."
            )
        if _WRITE.search(text):
            return self._cannot("The advisor reads the ledger; it does not change it.")
        for rule in (self._loan, self._goal, self._future_value):
            plan = rule()
            if plan is not None:
                return plan
        if _RECURRING.search(text) and not self._spending_about_names():
            return self._recurring()
        if _BUDGET.search(text):
            return self._budget()
        if _CASH_FLOW_PLAIN.search(text) or (
            _CASH_FLOW.search(text) and not self._spending_about_names()
        ):
            return self._cash_flow()
        if _NET_WORTH.search(text):
            return self._net_worth()
        spending = bool(_SPENDING.search(text))
        compare = bool(_COMPARE.search(text))
        compared = self._names_compared() if compare and len(self.periods) <= 1 else None
        if compared is not None:
            return self._spending(group_by=compared)
        if (compare and self.periods) or (
            (spending or self.matches) and (compare or len(self.periods) >= 2)
        ):
            return self._compare()
        if spending:
            return self._spending()
        if self.matches and _HOW_MUCH.search(text):
            return self._spending()
        if self.matches or _SEARCH.search(text):
            return self._search()
        if self.periods and _HOW_MUCH.search(text):
            return self._spending()
        return self._cannot("The question is not one the offline analyst can answer.")

    def _names_compared(self) -> str | None:
        """The kind of two names set against each other ("Uber vs Ola"), if any."""
        for first, second in zip(self.matches, self.matches[1:], strict=False):
            between = self.text[first.end : second.start]
            if first.kind == second.kind and _NAMES_AGAINST.fullmatch(between):
                return first.kind  # "payee" is also the group_by for payees
        return None

    def _spending_about_names(self) -> bool:
        """ "How much did we spend on subscriptions" is spending when the words name a category."""
        return bool(_SPENDING.search(self.text)) and any(
            match.kind == "category" for match in self.matches
        )

    # --- plans ------------------------------------------------------------------------

    def _make(
        self,
        intent: Intent,
        calls: Sequence[PlannedCall],
        periods: Sequence[Period] = (),
        missing: Sequence[str] = (),
    ) -> Plan:
        for period in periods:
            if period.partial:
                self.notes.append(
                    f"{_capital(period.phrase)} is not over yet: it runs from "
                    f"{period.start.isoformat()} to today, {period.end.isoformat()}."
                )
        return Plan(
            question=self.question,
            intent=intent,
            calls=tuple(calls),
            periods=tuple(periods),
            matched_names=tuple(self.matches),
            notes=tuple(self.notes),
            missing=tuple(missing),
            suggestions=suggestions(self.names) if missing else (),
        )

    def _cannot(self, reason: str) -> Plan:
        self.notes.append(reason)
        return Plan(
            question=self.question,
            intent=Intent.CANNOT_ANSWER,
            matched_names=tuple(self.matches),
            notes=tuple(self.notes),
            suggestions=suggestions(self.names),
        )

    def _default_period(self) -> Period:
        """The last twelve complete months, when a question names no period."""
        first = add_months(date(self.today.year, self.today.month, 1), -12)
        end = add_months(first, 12) - timedelta(days=1)
        period = Period(first, end, "the last 12 complete months")
        self.notes.append(
            f"No period was named: the last 12 complete months "
            f"({first.isoformat()} to {end.isoformat()}) were used."
        )
        return period

    def _filters(self, *, accounts: bool = True) -> dict[str, list[str]]:
        filters: dict[str, list[str]] = {}
        for kind, key in (("category", "categories"), ("payee", "payees"), ("account", "accounts")):
            if kind == "account" and not accounts:
                ignored = [m.name for m in self.matches if m.kind == "account"]
                if ignored:
                    self.notes.append(
                        "A comparison cannot be limited to accounts; not applied: "
                        + ", ".join(ignored)
                        + "."
                    )
                continue
            chosen = [match.name for match in self.matches if match.kind == kind]
            if chosen:
                filters[key] = chosen
        return filters

    def _group_by(self, filters: dict[str, list[str]]) -> str:
        if _GROUP_PAYEE.search(self.text):
            return "payee"
        if _GROUP_ACCOUNT.search(self.text):
            return "account"
        if _GROUP_MONTH.search(self.text):
            return "month"
        if "payees" in filters and "categories" not in filters:
            return "payee"
        return "category"

    def _unmatched_object(self) -> None:
        """Say so when "spent on X" names no category, payee or account of the workspace."""
        if self.matches:
            return
        text = self.text
        for start, end, _ in reversed(self.found_periods):
            text = text[:start] + " " * (end - start) + text[end:]
        found = _OBJECT.search(text)
        if found and found["object"].strip().lower() not in ("it", "them", "that", "average"):
            self.notes.append(
                f"No category, payee or account of this workspace matches "
                f"'{found['object'].strip()}'; all spending is shown instead."
            )

    def _spending(self, group_by: str | None = None) -> Plan:
        self._unmatched_object()
        filters = self._filters()
        period = self.periods[0] if self.periods else self._default_period()
        if group_by is None:
            group_by = self._group_by(filters)
            if filters and group_by == "category" and not self.periods:
                group_by = "month"  # "how much do we spend on X": month by month
        arguments: dict[str, Any] = {**period.as_arguments(), "group_by": group_by, **filters}
        top = _TOP.search(self.text)
        if top:
            arguments["limit"] = _count(top["count"])
        return self._make(Intent.SPENDING, [PlannedCall("spending", arguments)], [period])

    def _compare(self) -> Plan:
        periods = list(self.periods)
        if len(periods) == 1 and len(periods[0].parts) == 2:
            periods = list(periods[0].parts)  # "compare March to April"
        if not periods:
            last_month = find_periods("last month", self.today)[0][2]
            periods = [last_month, last_month.previous()]
            self.notes.append("No periods were named: last month was compared with the one before.")
        elif len(periods) == 1:
            periods.append(periods[0].previous())
        if len(periods) > 2:
            self.notes.append(
                "Only the first two periods were compared: "
                + ", ".join(p.phrase for p in periods[:2])
                + "."
            )
        first, second = periods[0], periods[1]
        filters = self._filters(accounts=False)
        arguments: dict[str, Any] = {
            "first": first.as_arguments(),
            "second": second.as_arguments(),
            "group_by": self._group_by(filters),
            **filters,
        }
        return self._make(
            Intent.COMPARE_PERIODS, [PlannedCall("compare_periods", arguments)], [first, second]
        )

    def _cash_flow(self) -> Plan:
        period = self.periods[0] if self.periods else self._default_period()
        call = PlannedCall("cash_flow", period.as_arguments())
        return self._make(Intent.CASH_FLOW, [call], [period])

    def _net_worth(self) -> Plan:
        arguments: dict[str, Any] = {}
        periods: list[Period] = []
        if self.periods:
            period = self.periods[0]
            periods.append(period)
            arguments["as_of"] = period.end.isoformat()
            if _HISTORY.search(self.text):
                arguments["months"] = _months_spanned(period)
        return self._make(Intent.NET_WORTH, [PlannedCall("net_worth", arguments)], periods)

    def _recurring(self) -> Plan:
        arguments: dict[str, Any] = {}
        periods: list[Period] = []
        if self.periods:
            period = self.periods[0]
            periods.append(period)
            arguments = {"as_of": period.end.isoformat(), "months": _months_spanned(period)}
        return self._make(
            Intent.RECURRING_PAYMENTS, [PlannedCall("recurring_payments", arguments)], periods
        )

    def _budget(self) -> Plan:
        if self.periods:
            period = self.periods[0]
            if (period.start.year, period.start.month) != (period.end.year, period.end.month):
                self.notes.append(
                    f"Budgets are monthly: {period.phrase} was read as its last month."
                )
            month = period.end
        else:
            period = find_periods("this month", self.today)[0][2]
            month = self.today
        arguments = {"month": f"{month.year:04d}-{month.month:02d}"}
        return self._make(Intent.BUDGET_STATUS, [PlannedCall("budget_status", arguments)], [period])

    def _search(self) -> Plan:
        arguments: dict[str, Any] = {"query": self._search_query()}
        periods: list[Period] = []
        if self.periods:
            period = self.periods[0]
            periods.append(period)
            arguments.update(period.as_arguments())
        accounts = [m.name for m in self.matches if m.kind == "account"]
        # Only names spelled out narrow the search; synonyms are left to retrieval.
        categories = [m.name for m in self.matches if m.kind == "category" and m.via == "name"]
        if accounts:
            arguments["accounts"] = accounts
        if categories:
            arguments["categories"] = categories
        count = _SEARCH_COUNT.search(self.text)
        if count:
            arguments["limit"] = int(count["count"])
        return self._make(
            Intent.SEARCH_TRANSACTIONS, [PlannedCall("search_transactions", arguments)], periods
        )

    def _search_query(self) -> str:
        text = self.text
        for start, end, _ in reversed(self.found_periods):
            text = text[:start] + " " + text[end:]
        text = _SEARCH_FILLER.sub("", text, count=1)
        text = _SEARCH_COUNT.sub(" ", text)
        text = re.sub(
            r"\btransactions?(?:\s+(?:at|to|for|with|from|on|of|about))?\b", " ", text, flags=re.I
        )
        text = re.sub(r"\b(?:in|during|for|from|since|over|on)\s*$", "", text.strip(" ?.!,;:"))
        query = " ".join(text.split()).strip(" ?.!,;:")
        return query or " ".join(m.phrase for m in self.matches) or self.text

    # --- the three calculations -------------------------------------------------------

    def _rate(self, *, required: bool, missing: list[str]) -> str:
        if self.percents:
            if len(self.percents) > 1:
                self.notes.append(
                    f"Several rates were given; {_plain(self.percents[0].value)}% was used."
                )
            return _plain(self.percents[0].value)
        bare = _AT_RATE.search(self.text)
        if bare:
            self.notes.append(f"'{bare.group(0).strip()}' was read as {bare['value']}% a year.")
            return _plain(Decimal(bare["value"]))
        if required:
            missing.append("the annual interest rate (e.g. 8.5%)")
            return "0"
        self.notes.append("No rate of return was given: 0% a year was assumed.")
        return "0"

    def _months(self, missing: list[str], what: str) -> Decimal | None:
        if not self.durations:
            missing.append(what)
            return None
        return self.durations[0].months

    def _currency(self, amounts: Sequence[Amount]) -> str:
        named = {amount.currency for amount in amounts if amount.currency}
        if len(named) == 1:
            return named.pop()
        return self.currency

    def _money(self, value: Decimal, currency: str) -> str:
        places = exponent(currency)
        exact = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        if exact != value:
            self.notes.append(f"{_plain(value)} was rounded to {exact} {currency}.")
        return str(exact)

    def _loan(self) -> Plan | None:
        if not _LOAN.search(self.text) or not self.amounts or _SPENDING.search(self.text):
            return None
        missing: list[str] = []
        plain = [a for a in self.amounts if not _MONTHLY_AFTER.match(self.text[a.end :])]
        principal = (plain or self.amounts)[0]
        currency = self._currency([principal])
        rate = self._rate(required=True, missing=missing)
        months = self._months(missing, "the loan tenure (e.g. 20 years)")
        if missing or months is None:
            return self._make(Intent.LOAN_EMI, [], missing=missing)
        arguments = {
            "principal": self._money(principal.value, currency),
            "annual_rate_percent": rate,
            "months": _whole(months),
            "currency": currency,
        }
        return self._make(Intent.LOAN_EMI, [PlannedCall("loan_emi", arguments)])

    def _goal(self) -> Plan | None:
        if not _GOAL.search(self.text) or not self.amounts:
            return None
        missing: list[str] = []
        current = [a for a in self.amounts if self._is_lump(a)]
        targets = [a for a in self.amounts if a not in current]
        if not targets:
            return None
        target = max(targets, key=lambda amount: amount.value)
        currency = self._currency([target, *current])
        months = self._months(missing, "when the goal should be reached (e.g. in 3 years)")
        rate = self._rate(required=False, missing=missing)
        if months is None:
            return self._make(Intent.GOAL_SAVING, [], missing=missing)
        arguments: dict[str, Any] = {
            "target": self._money(target.value, currency),
            "months": _whole(months),
            "annual_rate_percent": rate,
            "currency": currency,
        }
        if current:
            arguments["current_savings"] = self._money(
                sum((a.value for a in current), Decimal(0)), currency
            )
        return self._make(Intent.GOAL_SAVING, [PlannedCall("goal_saving", arguments)])

    def _future_value(self) -> Plan | None:
        if not _FUTURE.search(self.text) or not self.amounts:
            return None
        if not (self.durations or self.percents) and (self.periods or self.matches):
            return None  # "how much did we save in March": a question about the past
        monthly: list[Amount] = []
        initial: list[Amount] = []
        for amount in self.amounts:
            after = self.text[amount.end :]
            before = self.text[max(0, amount.start - 40) : amount.start]
            if _MONTHLY_AFTER.match(after) or _MONTHLY_BEFORE.search(before):
                monthly.append(amount)
            elif _YEARLY_AFTER.match(after):
                monthly.append(amount)
                self.notes.append(
                    f"{amount.text} a year was spread over 12 monthly savings of "
                    f"{_plain((amount.value / 12).quantize(Decimal('0.01')))}."
                )
            elif self._is_lump(amount):
                initial.append(amount)
        rest = [a for a in self.amounts if a not in monthly and a not in initial]
        if rest and not monthly:
            if _INVEST_VERB.search(self.text) and not re.search(r"\bsip\b", self.text, re.I):
                initial.extend(rest)
            else:
                monthly.append(rest[0])
                self.notes.append(f"{rest[0].text} was read as a monthly saving.")
        currency = self._currency(monthly + initial)
        missing: list[str] = []
        months = self._months(missing, "for how long (e.g. for 10 years)")
        rate = self._rate(required=False, missing=missing)
        if months is None:
            return self._make(Intent.FUTURE_VALUE, [], missing=missing)
        saving = Decimal(0)
        for amount in monthly:
            yearly = _YEARLY_AFTER.match(self.text[amount.end :])
            saving += amount.value / 12 if yearly else amount.value
        years = months / 12
        arguments: dict[str, Any] = {
            "monthly_saving": self._money(saving, currency),
            "annual_rate_percent": rate,
            "years": int(years) if years == years.to_integral_value() else _plain(years),
            "currency": currency,
        }
        if initial:
            arguments["initial"] = self._money(
                sum((a.value for a in initial), Decimal(0)), currency
            )
        return self._make(Intent.FUTURE_VALUE, [PlannedCall("future_value", arguments)])

    def _is_lump(self, amount: Amount) -> bool:
        before = self.text[max(0, amount.start - 40) : amount.start]
        return bool(_LUMP_BEFORE.search(before) or _LUMP_AFTER.match(self.text[amount.end :]))


# --- helpers ------------------------------------------------------------------------------


def _loan_interest(matches: list[NameMatch], text: str, names: Vocabulary) -> list[NameMatch]:
    """ "Interest ... on the home loan" is the loan-interest expense, not interest income, and
    is paid from a bank account, not from the loan account."""
    if not (re.search(r"\binterest\b", text, re.IGNORECASE) and _LOAN.search(text)):
        return matches
    category = next(
        (
            entry
            for entry in names.of_kind("category")
            if {"loan", "interest"} <= set(entry.name.lower().split())
        ),
        None,
    )
    if category is None:
        return matches
    kept = [
        match
        for match in matches
        if not (match.kind == "category" and "interest" in match.phrase.lower())
        and not (match.kind == "account" and "loan" in match.phrase.lower())
    ]
    if any(match.id == category.id for match in kept):
        return kept
    start = text.lower().find("interest")
    end = start + len("interest")
    found = NameMatch(
        category.id, category.name, "category", text[start:end], 95.0, "synonym", start, end
    )
    return sorted([found, *kept], key=lambda match: match.start)


def _plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 8.50 -> "8.5", 1E+1 -> "10"."""
    text = format(value.normalize(), "f")
    return text


def _whole(months: Decimal) -> int:
    return int(months.to_integral_value(rounding=ROUND_HALF_EVEN))


def _count(text: str) -> int:
    return int(text) if text.isdigit() else NUMBER_WORDS[text.lower()]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _months_spanned(period: Period) -> int:
    """Whole months a period covers: 12 for a calendar year and for a rolling year alike."""
    days = (period.end - period.start).days + 1
    return max(1, round(days / 30.4375))


# --- what to suggest when a question cannot be answered ------------------------------------

_PREFERRED_CATEGORIES = ("groceries", "dining out", "food delivery", "rides", "fuel", "travel")


def suggestions(names: Vocabulary) -> tuple[str, ...]:
    """Three or four questions the analyst answers, in the workspace's own words."""
    categories = [
        entry.name
        for entry in names.of_kind("category")
        if not _INCOME_WORDS.search(entry.name) and entry.name.lower() != "other expenses"
    ]
    ranked = sorted(
        categories,
        key=lambda name: (
            _PREFERRED_CATEGORIES.index(name.lower())
            if name.lower() in _PREFERRED_CATEGORIES
            else len(_PREFERRED_CATEGORIES),
            name.lower(),
        ),
    )
    # the shortest payee names read best in a suggestion ("Ola", "Uber")
    payees = sorted(
        (entry.name for entry in names.of_kind("payee")), key=lambda n: (len(n), n.lower())
    )
    found: list[str] = []
    if ranked:
        found.append(f"How much did we spend on {ranked[0].lower()} last month?")
    else:
        found.append("How much did we spend last month, by category?")
    if len(ranked) > 1:
        found.append(f"Compare our {ranked[1].lower()} spend this quarter with last quarter")
    else:
        found.append("Compare our spending this quarter with last quarter")
    found.append("What subscriptions are we paying for?")
    if payees:
        found.append(f"Show our payments to {payees[0]} this year")
    else:
        found.append("If we save 20,000 a month at 8% for 10 years, what do we have?")
    return tuple(found[:4])
