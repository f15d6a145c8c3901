"""The offline analyst's answers, written from the tools' results.

`Composer(question, plan).answer(answered)` turns each tool call and its result into short lines
in the Senior Wealth Advisor's voice: the answer and its figures first, then at most a few
lines of detail, the plan's assumptions, and transactions cited as `[txn:<id>]` where a
result lists them. Every figure is copied from a result or the question; `checked` drops
any line the figure guardrail could not verify, so an answer never states a number that is
not in its sources.

Hand-written templates: no library turns these tools' results into prose without a model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.advisor.analyst.understanding import Intent, Plan, PlannedCall
from domain.advisor.analyst.wording import (
    amount_of,
    day,
    join,
    money,
    month_label,
    percent,
    plain,
    span,
)
from domain.advisor.figures import figures_in, unverified_figures

logger = logging.getLogger(__name__)

ROWS_SHOWN = 5
RECURRING_SHOWN = 12
HITS_SHOWN = 10
_EXAMPLE = re.compile(r"\s*\(e\.g\.[^)]*\)")


@dataclass(frozen=True)
class Answered:
    """One tool call of the previous round and what came back (the parsed JSON)."""

    name: str
    arguments: Mapping[str, Any]
    result: Any
    is_error: bool = False


def checked(lines: Sequence[str], sources: Sequence[Any]) -> list[str]:
    """The lines whose every figure is in `sources` (others are dropped and logged). The
    sources are walked once for the whole answer: a result can hold thousands of values."""
    missing = set(unverified_figures("\n".join(lines), sources))
    if not missing:
        return list(lines)
    logger.warning(
        "offline analyst dropped lines with unverified figures %s: %s", sorted(missing), lines
    )
    return [line for line in lines if not {written for written, _ in figures_in(line)} & missing]


def citation(transaction_id: Any) -> str:
    return f"[txn:{transaction_id}]"


# --- round 1: what the analyst is about to do, or why it cannot ---------------------------


def preamble(plan: Plan) -> str:
    """One sentence saying which figures are being fetched (streamed before the tool calls)."""
    call = plan.calls[0]
    subject = _subject(call.arguments) or "your"
    return {
        Intent.SPENDING: f"Let me add up {_possessive(subject)} spending.",
        Intent.COMPARE_PERIODS: f"Let me compare {_possessive(subject)} spending in both periods.",
        Intent.RECURRING_PAYMENTS: "Let me look for the payments that recur in your ledger.",
        Intent.FUTURE_VALUE: "Let me work out how that saving plan grows.",
        Intent.LOAN_EMI: "Let me work out the instalments of that loan.",
        Intent.GOAL_SAVING: "Let me work out the monthly saving that goal needs.",
        Intent.CASH_FLOW: "Let me total your income and expenses.",
        Intent.NET_WORTH: "Let me total your balances.",
        Intent.BUDGET_STATUS: "Let me check your budgets.",
        Intent.SEARCH_TRANSACTIONS: "Let me search your transactions.",
    }.get(plan.intent, "Let me look that up.")


def cannot_answer(plan: Plan) -> list[str]:
    """Why the question cannot be answered, and questions that can."""
    if plan.missing:
        # the plan's examples ("e.g. 8.5%") are figures of no source: left out
        needed = [_EXAMPLE.sub("", item) for item in plan.missing]
        lines = [f"To work that out I need {join(needed)}. Ask again with them included."]
    elif plan.intent == Intent.CANNOT_ANSWER:
        reason = " ".join(plan.notes)
        if "does not change it" in reason:
            lead = "I can't do that: I read your ledger, I never change it or move money."
        elif "outside this workspace" in reason:
            lead = (
                "I can't help with that one. I answer questions about this workspace's own "
                "money, and I don't act on instructions inside a question or a transaction."
            )
        else:
            lead = "I can't answer that one from your ledger."
        lines = [
            lead,
            "I can tell you about your spending, cash flow, balances, budgets and recurring "
            "payments, and work out saving plans, loan EMIs and savings goals.",
        ]
    else:
        lines = ["I could not find the figures for that question."]
    if plan.suggestions:
        lines.append(
            "Or ask me something like:" if plan.missing else "Questions I can answer for you:"
        )
        lines += [f"- {suggestion}" for suggestion in plan.suggestions]
    return lines


# --- round 2: the answer ------------------------------------------------------------------


class Composer:
    """Writes the answer to one question from its tool results."""

    def __init__(self, question: str, plan: Plan) -> None:
        self.question = question
        self.plan = plan

    def answer(self, answered: Sequence[Answered]) -> list[str]:
        lines: list[str] = []
        for item in answered:
            if item.is_error or not isinstance(item.result, Mapping):
                lines += self._error(item)
                continue
            write = _WRITERS.get(item.name)
            if write is None:
                lines.append(f"I ran {item.name}, but I cannot summarise its result.")
                continue
            try:
                lines += write(self, item.arguments, item.result)
            except (KeyError, TypeError, ValueError, ArithmeticError):
                # a result of another shape than this writer knows: say so, never guess
                logger.exception("offline analyst could not read a %s result", item.name)
                lines.append(
                    f"I got {_TOOL_WORDS.get(item.name, item.name)}, but could not read it."
                )
        if self._planned(answered):
            lines += self._notes()
        if len(answered) == 1 and not answered[0].is_error and answered[0].name in _FOLLOW_UPS:
            lines.append(_FOLLOW_UPS[answered[0].name])
        return lines

    def _planned(self, answered: Sequence[Answered]) -> bool:
        """The calls answered are the plan's (so its notes describe them)."""
        planned = [PlannedCall(c.name, dict(c.arguments)) for c in answered]
        return planned == list(self.plan.calls)

    def _notes(self) -> list[str]:
        used = {
            str(name)
            for call in self.plan.calls
            for key in ("categories", "payees", "accounts")
            for name in call.arguments.get(key) or []
        }
        found = []
        for match in self.plan.matched_names:
            if match.name not in used:
                continue  # read in the question but not used by the calls ("cash" in "cash flow")
            if match.via != "name" and match.phrase.casefold() != match.name.casefold():
                found.append(f"I read “{match.phrase}” as your {match.kind} {match.name}.")
        # "this year is not over yet: it runs from ... to today": each writer says "so far"
        # or gives the dates itself, in figures its results hold
        partial = tuple(
            f"{_capital(p.phrase)} is not over yet" for p in self.plan.periods if p.partial
        )
        found += [f"Note: {note}" for note in self.plan.notes if not note.startswith(partial)]
        return found

    def _error(self, item: Answered) -> list[str]:
        result = item.result if isinstance(item.result, Mapping) else {}
        reason = str(result.get("error") or "the tool gave no figures")
        what = _TOOL_WORDS.get(item.name, item.name)
        return [f"I could not get {what}: {reason.rstrip('.')}."]

    # --- periods in the question's own words -------------------------------------------

    def when(self, start: str, end: str) -> str:
        """ "last month (February 2026)" when the question named the period, else the dates:
        "in February 2026", "from 1 Jan 2026 to 14 Mar 2026"."""
        words = span(start, end)
        for period in self.plan.periods:
            if period.start.isoformat() == start and period.end.isoformat() == end:
                phrase = period.phrase
                named = phrase and phrase.casefold() in self.question.casefold()
                if named and phrase.casefold() != words.casefold():
                    so_far = ", so far" if period.partial else ""
                    lead = "" if phrase.split()[0].casefold() in _PLACED else "in "
                    return f"{lead}{phrase} ({words}{so_far})"
        return f"from {words}" if " to " in words else f"in {words}"

    # --- one writer per tool -------------------------------------------------------------

    def spending(self, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
        subject = _subject(arguments)
        period = data.get("period") or {}
        when = self.when(period.get("start", ""), period.get("end", ""))
        total = data.get("total") or {}
        count = data.get("transactions")
        on = _spent_on(arguments)
        if amount_of(total) == 0 and not data.get("rows"):
            lines = [f"I found no spending{on} {when}."]
        else:
            across = ""
            if count:
                across = f", across {count} transaction{'' if count == 1 else 's'}"
            lines = [f"You spent {money(total)}{on} {when}{across}."]
        rows = list(data.get("rows") or [])
        group_by = data.get("group_by", "category")
        single = len(rows) == 1 and str(rows[0].get("label", "")).casefold() == subject.casefold()
        if rows and not single:
            heading = {
                "category": "By category:",
                "payee": "By payee:",
                "account": "By account:",
                "month": "Month by month:",
            }.get(group_by, "In detail:")
            lines.append(heading)
            shown = rows if group_by == "month" else rows[:ROWS_SHOWN]
            for row in shown:
                label = row.get("label", "?")
                if group_by == "month":
                    label = month_label(str(label))
                share = row.get("share_percent")
                part = f" ({percent(share)})" if share is not None and group_by != "month" else ""
                lines.append(f"- {label}: {money(row['amount'])}{part}")
            if len(shown) < len(rows) or data.get("rows_omitted"):
                lines.append("- and smaller amounts elsewhere.")
        missing = data.get("payees_without_spending")
        if missing:
            lines.append(
                f"I found no spending at {join([str(p) for p in missing])} in that period."
            )
        lines += _unconverted(data.get("unconverted"))
        return lines

    def compare_periods(self, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
        subject = _subject(arguments) or "your spending"
        first, second = data.get("first") or {}, data.get("second") or {}
        first_words = self.when(first.get("start", ""), first.get("end", ""))
        second_words = self.when(second.get("start", ""), second.get("end", ""))
        total = data.get("total") or {}
        lines = [
            f"{_capital(subject)}: {money(total['first'])} {first_words}, against "
            f"{money(total['second'])} {second_words}."
        ]
        later_first = first.get("start", "") > second.get("start", "")
        lines.append(_change_sentence(total, later_first, _bare(first_words), _bare(second_words)))
        for period in self.plan.periods:
            dates = {"start": period.start.isoformat(), "end": period.end.isoformat()}
            if period.partial and dates in (first, second):
                lines.append(
                    f"{_capital(period.phrase)} is not over yet, so part of it is set against "
                    "a whole one."
                )
        rows = [r for r in data.get("rows") or [] if amount_of(r.get("change")) != 0]
        if len(data.get("rows") or []) > 1 and rows:
            rows.sort(key=lambda r: (-abs(amount_of(r.get("change"))), str(r.get("label"))))
            lines.append("The biggest movers:")
            for row in rows[:3]:
                label = str(row.get("label", "?"))
                if data.get("group_by") == "month":
                    label = month_label(label)
                earlier, later = (
                    (row["second"], row["first"]) if later_first else (row["first"], row["second"])
                )
                rise = amount_of(later) > amount_of(earlier)
                lines.append(
                    f"- {label}: {money(earlier)} then {money(later)} "
                    f"({'up' if rise else 'down'} {money(row['change'], unsigned=True)})"
                )
        unconverted = data.get("unconverted") or {}
        lines += _unconverted([*unconverted.get("first", []), *unconverted.get("second", [])])
        return lines

    def recurring_payments(
        self, arguments: Mapping[str, Any], data: Mapping[str, Any]
    ) -> list[str]:
        window = data.get("window") or {}
        found = list(data.get("recurring") or [])
        if not found:
            return [
                f"I found no recurring payments from {day(window['start'])} to "
                f"{day(window['end'])}: no payee was charged at a regular interval for a "
                "similar amount in that time."
            ]
        lines = [
            f"You are paying these recurring payments and subscriptions, "
            f"{money(data['monthly_total'])} a month in all ({money(data['yearly_total'])} "
            "a year):"
        ]
        for item in found[:RECURRING_SHOWN]:
            charge = money(item["amount"])
            base = item.get("amount_in_base")
            if base and base.get("currency") != item["amount"].get("currency"):
                charge += f" ({money(base)})"
            ids = item.get("transaction_ids") or []
            cite = f" {citation(ids[-1])}" if ids else ""
            lines.append(
                f"- {item['payee']}: {charge} {item['cadence']}, last on "
                f"{day(item['last_charge'])}, next expected {day(item['next_expected'])} "
                f"({item['category']}){cite}"
            )
        if len(found) > RECURRING_SHOWN:
            lines.append("- and a few smaller ones.")
        lines.append(
            f"I looked at charges from {day(window['start'])} to {day(window['end'])}: the "
            "same payee at a regular interval for a similar amount."
        )
        unconverted = data.get("yearly_not_converted")
        if unconverted:
            lines.append(
                "Left out of the totals for want of an exchange rate: "
                + join([money(m) for m in unconverted])
                + " a year."
            )
        return lines

    def future_value(self, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
        rate = plain(data["annual_rate_percent"])
        years = data["years"]
        start = ""
        if amount_of(data.get("initial")) > 0:
            start = f" on top of {money(data['initial'])} you start with,"
        if amount_of(data.get("monthly_saving")) == 0:
            plan = f"Investing {money(data['initial'])}"
        else:
            plan = f"Saving {money(data['monthly_saving'])} a month{start}"
        lines = [
            f"{plan} at {rate}% a year for {years} years gives you {money(data['future_value'])}.",
            f"Of that, {money(data['total_deposited'])} is what you put in and "
            f"{money(data['growth'])} is growth.",
        ]
        by_year = data.get("by_year") or []
        if len(by_year) >= 4:
            middle = by_year[len(by_year) // 2 - 1]
            lines.append(f"After {middle['year']} years you would have {money(middle['value'])}.")
        lines.append(f"Assumed: {data['convention']}; the rate stays the same throughout.")
        return lines

    def loan_emi(self, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
        rate = plain(data["annual_rate_percent"])
        lines = [
            f"A loan of {money(data['principal'])} at {rate}% a year over {data['months']} "
            f"months costs {money(data['emi'])} a month (EMI).",
            f"You would pay {money(data['total_interest'])} in interest, "
            f"{money(data['total_paid'])} in all.",
        ]
        if data.get("final_instalment") and amount_of(data["final_instalment"]) != amount_of(
            data["emi"]
        ):
            lines.append(
                f"The last instalment is {money(data['final_instalment'])}: it settles the "
                "rounding of the others."
            )
        schedule = data.get("schedule") or []
        if schedule and "year" in schedule[0]:
            first = schedule[0]
            lines.append(
                f"In year {first['year']}, {money(first['interest'])} of your payments goes to "
                f"interest and {money(first['principal'])} to the principal."
            )
        lines.append(f"Assumed: {data['convention']}.")
        return lines

    def goal_saving(self, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
        rate = plain(data["annual_rate_percent"])
        months = data["months"]
        target = money(data["target"])
        if data.get("already_on_track"):
            return [
                f"You are already on track: {money(data['current_savings'])} at {rate}% a year "
                f"grows to {money(data['projected_value'])} in {months} months, past your "
                f"target of {target}. No monthly saving is needed."
            ]
        having = ""
        if amount_of(data.get("current_savings")) > 0:
            having = f", counting the {money(data['current_savings'])} you already have"
        return [
            f"To reach {target} in {months} months at {rate}% a year{having}, save "
            f"{money(data['monthly_saving'])} a month.",
            f"You would deposit {money(data['total_deposits'])}; interest adds "
            f"{money(data['interest_earned'])}, for {money(data['projected_value'])} at the end.",
            f"Assumed: {data['convention']}.",
        ]

    def cash_flow(self, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
        period = data.get("period") or {}
        when = self.when(period.get("start", ""), period.get("end", ""))
        total = data.get("total") or {}
        lines = [
            f"{_capital(when)}, income was {money(total['income'])} and expenses "
            f"{money(total['expenses'])}."
        ]
        lines.append(_net_sentence(total))
        months = list(data.get("months") or [])
        if 1 < len(months) <= 6:
            lines.append("Month by month:")
            for flow in months:
                lines.append(
                    f"- {month_label(flow['month'])}: income {money(flow['income'])}, expenses "
                    f"{money(flow['expenses'])}, net {money(flow['net'])}"
                )
        elif len(months) > 6:
            best = max(months, key=lambda f: (amount_of(f["net"]), f["month"]))
            worst = min(months, key=lambda f: (amount_of(f["net"]), f["month"]))
            lines.append(
                f"Your best month was {month_label(best['month'])} (net {money(best['net'])}); "
                f"the weakest was {month_label(worst['month'])} (net {money(worst['net'])})."
            )
        lines += _unconverted(data.get("unconverted"))
        return lines

    def net_worth(self, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
        lines = [
            f"Your net worth as of {day(data['as_of'])} is {money(data['net_worth'])}: assets "
            f"{money(data['assets'])}, liabilities {money(data['liabilities'], unsigned=True)}."
        ]
        asked = {m.name for m in self.plan.matched_names if m.kind == "account"}
        for account in data.get("accounts") or []:
            if account["account"] in asked:
                lines.insert(0, f"{account['account']} holds {money(account['balance'])}.")
        accounts = [
            a for a in data.get("accounts") or [] if a.get("balance_in_base") and not a["archived"]
        ]
        accounts.sort(key=lambda a: (-abs(amount_of(a["balance_in_base"])), a["account"]))
        if accounts:
            lines.append("The largest balances:")
            for account in accounts[:ROWS_SHOWN]:
                own = money(account["balance"])
                base = account["balance_in_base"]
                if base.get("currency") != account["balance"].get("currency"):
                    own += f" ({money(base)})"
                lines.append(f"- {account['account']}: {own}")
        history = data.get("history") or []
        if len(history) > 1:
            first = history[0]
            lines.append(
                f"At the end of {month_label(first['month'])} it was {money(first['net_worth'])}."
            )
        lines += _unconverted(data.get("unconverted"))
        return lines

    def budget_status(self, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
        month = month_label(str(data.get("month", "")))
        rows = list(data.get("budgets") or [])
        if not rows:
            return [
                f"No budgets are set in this workspace, so there is nothing to check for {month}."
                " Set a monthly budget on a category and I can track it."
            ]
        order = {"over": 0, "near": 1, "under": 2}
        rows.sort(key=lambda r: (order.get(r["status"], 3), r["category"]))
        over = [r["category"] for r in rows if r["status"] == "over"]
        so_far = " so far" if any(p.partial for p in self.plan.periods) else ""
        lead = (
            f"In {month}{so_far} you are over budget on {join(over)}."
            if over
            else f"In {month}{so_far} every budget is within its limit."
        )
        lines = [lead]
        for row in rows:
            used = f" ({percent(row['percent_used'])} used)" if row.get("percent_used") else ""
            if row["status"] == "over":
                left = f"over by {money(row['remaining'], unsigned=True)}"
            else:
                left = f"{money(row['remaining'])} left"
            lines.append(
                f"- {row['category']}: {money(row['spent'])} of {money(row['budget'])}{used}, "
                f"{left}"
            )
        lines += _unconverted(data.get("unconverted"))
        return lines

    def search_transactions(
        self, arguments: Mapping[str, Any], data: Mapping[str, Any]
    ) -> list[str]:
        query = str(data.get("query") or arguments.get("query") or "")
        results = list(data.get("results") or [])
        if not results:
            return [f"I found no transactions matching “{query}”."]
        lines = [f"The transactions that best match “{query}”:"]
        for hit in results[:HITS_SHOWN]:
            value = hit.get("amount") or {}
            amount = money(value, unsigned=True)
            if amount_of(value) > 0:
                amount = f"{amount} received"
            where = join([part for part in (hit.get("category"), hit.get("account")) if part])
            lines.append(
                f"- {day(hit['date'])}, {hit.get('payee') or 'no payee'}, {amount}"
                + (f" ({where})" if where else "")
                + f" {citation(hit['id'])}"
            )
        return lines


Writer = Callable[[Composer, Mapping[str, Any], Mapping[str, Any]], list[str]]
_WRITERS: dict[str, Writer] = {
    "spending": Composer.spending,
    "compare_periods": Composer.compare_periods,
    "recurring_payments": Composer.recurring_payments,
    "future_value": Composer.future_value,
    "loan_emi": Composer.loan_emi,
    "goal_saving": Composer.goal_saving,
    "cash_flow": Composer.cash_flow,
    "net_worth": Composer.net_worth,
    "budget_status": Composer.budget_status,
    "search_transactions": Composer.search_transactions,
}
_FOLLOW_UPS = {
    "spending": "I can split this by payee or compare it with another period if that helps.",
    "compare_periods": "I can show the payees behind the change if you want the detail.",
    "recurring_payments": "Ask me about any one of them, for example what it cost this year.",
    "future_value": "I can also work out the monthly saving a specific target needs.",
    "cash_flow": "I can show where the money went, by category or by payee.",
}
_TOOL_WORDS = {
    "spending": "your spending",
    "compare_periods": "the comparison",
    "recurring_payments": "your recurring payments",
    "future_value": "the saving plan's value",
    "loan_emi": "the loan's EMI",
    "goal_saving": "the saving the goal needs",
    "cash_flow": "your cash flow",
    "net_worth": "your net worth",
    "budget_status": "your budgets",
    "search_transactions": "matching transactions",
}


# --- helpers ----------------------------------------------------------------------------


def _subject(arguments: Mapping[str, Any]) -> str:
    """What the figures are about, in the names the call used: "Groceries", "Swiggy"."""
    named: list[str] = []
    for key in ("categories", "payees", "accounts"):
        value = arguments.get(key) or []
        if isinstance(value, list):
            named += [str(item) for item in value]
    return join(named)


# First words of a period phrase that need no "in" before them ("last month", "since May").
_PLACED = frozenset(
    [
        "last",
        "this",
        "past",
        "previous",
        "next",
        "between",
        "from",
        "since",
        "over",
        "in",
        "during",
        "the",
        "so",
        "until",
        "till",
        "before",
        "after",
        "year",
        "today",
        "yesterday",
    ]
)


def _spent_on(arguments: Mapping[str, Any]) -> str:
    """ " on Groceries at Swiggy from ICICI credit card": what a spending call was about."""
    words = ""
    for key, preposition in (("categories", "on"), ("payees", "at"), ("accounts", "from")):
        value = arguments.get(key) or []
        if isinstance(value, list) and value:
            words += f" {preposition} {join([str(item) for item in value])}"
    return words


def _possessive(subject: str) -> str:
    return "your" if subject == "your" else f"your {subject}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _bare(words: str) -> str:
    """ "last quarter (October to December 2025)" -> "last quarter"; dates stay dates."""
    head = words.split(" (", 1)[0]
    if head.startswith("from "):
        return "the period " + head
    return head.removeprefix("in ")


def _change_sentence(
    total: Mapping[str, Any],
    later_first: bool,
    first_words: str,
    second_words: str,
) -> str:
    """The change between the periods, told from the earlier one to the later one. The tool's
    change is second minus first, its percent relative to the first: both are quoted as given."""
    change = amount_of(total.get("change"))
    share = total.get("change_percent")
    if change == 0:
        return "That is the same amount in both periods."
    size = money(total["change"], unsigned=True)
    if not later_first:
        direction = "more" if change > 0 else "less"
        by = f" ({'up' if change > 0 else 'down'} {percent(share)})" if share is not None else ""
        return f"{_capital(second_words)} was {size} {direction} than {first_words}{by}."
    # first is the later period: the second (earlier) one differs from it by `change`
    direction = "less" if change > 0 else "more"
    lines = f"{_capital(first_words)} is {size} {direction} than {second_words}"
    if share is not None:
        higher = "higher" if change > 0 else "lower"
        lines += f"; {second_words} was {percent(share)} {higher} than {first_words}"
    return lines + "."


def _net_sentence(total: Mapping[str, Any]) -> str:
    net = amount_of(total.get("net"))
    rate = total.get("savings_rate_percent")
    if net >= 0:
        saved = f"You kept {money(total['net'])}"
        return saved + (f", a savings rate of {percent(rate)}." if rate is not None else ".")
    return f"You spent {money(total['net'], unsigned=True)} more than came in."


def _unconverted(values: Any) -> list[str]:
    if not values:
        return []
    return [
        "Left out for want of an exchange rate: "
        + join([money(v) for v in values if isinstance(v, Mapping)])
        + "."
    ]
