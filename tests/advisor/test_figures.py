"""The figure guardrail on its own: what counts as a figure, and what vouches for one."""

from __future__ import annotations

from decimal import Decimal

from domain.advisor.figures import figures_in, unverified_figures

RESULT = {
    "total": {"amount": "12345.50", "currency": "INR"},
    "share_percent": "23.50",
    "savings_rate": "0.125",
    "period": {"start": "2025-03-01", "end": "2025-03-31"},
    "transactions": 7,
}


def test_figures_are_read_as_a_reader_sees_them() -> None:
    cited = "[txn:0f8e6a1c-1111-4222-8333-944455556666]"
    text = f"1. You spent ₹12,345.50 (-3.5%) over 7 purchases {cited}"
    assert [value for _, value in figures_in(text)] == [
        Decimal("12345.5"),
        Decimal("-3.5"),
        Decimal("7"),
    ]


def test_figures_found_in_tool_results_or_the_question_pass() -> None:
    answer = (
        "In March 2025 (03/31) you spent ₹12,345.50 on 7 purchases, 23.5% of spending; "
        "you saved 12.5% of income. At 8% for 10 years that grows."
    )
    assert unverified_figures(answer, [RESULT, "save 20,000 a month at 8% for 10 years"]) == []


def test_a_figure_from_nowhere_is_named() -> None:
    answer = "You spent ₹12,345.50, about 12% more than your usual ₹11,000."
    assert unverified_figures(answer, [RESULT]) == ["12", "11,000"]
    assert unverified_figures("No figures here.", []) == []
    assert unverified_figures("You spent 12,345.51", [RESULT]) == ["12,345.51"]
