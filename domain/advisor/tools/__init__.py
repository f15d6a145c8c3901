"""The advisor's deterministic tools: every figure the advisor states comes from one of these.

`toolbox()` lists them by name; `run_tool()` validates the arguments against the tool's
JSON Schema (its pydantic model) and runs it. Wrong arguments raise `ToolInputError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from domain.advisor.tools.base import (
    SearchHit,
    Tool,
    ToolContext,
    ToolInputError,
    ToolResult,
    ToolUnavailable,
    TransactionSearch,
)
from domain.advisor.tools.budget import BudgetStatusTool
from domain.advisor.tools.planning import FutureValueTool, GoalSavingTool, LoanEmiTool
from domain.advisor.tools.position import CashFlowTool, NetWorthTool
from domain.advisor.tools.recurring import RecurringPaymentsTool
from domain.advisor.tools.search import SearchTransactionsTool
from domain.advisor.tools.spending import ComparePeriodsTool, SpendingTool
from domain.core.errors import BadInput, NotFound

__all__ = [
    "SearchHit",
    "Tool",
    "ToolContext",
    "ToolInputError",
    "ToolResult",
    "ToolUnavailable",
    "TransactionSearch",
    "run_tool",
    "toolbox",
]

_TOOLS: tuple[Tool, ...] = (
    SpendingTool(),
    ComparePeriodsTool(),
    CashFlowTool(),
    NetWorthTool(),
    RecurringPaymentsTool(),
    BudgetStatusTool(),
    FutureValueTool(),
    LoanEmiTool(),
    GoalSavingTool(),
    SearchTransactionsTool(),
)
_BY_NAME: Mapping[str, Tool] = MappingProxyType({tool.name: tool for tool in _TOOLS})


def toolbox() -> Mapping[str, Tool]:
    """Every tool by name (read-only)."""
    return _BY_NAME


async def run_tool(ctx: ToolContext, name: str, arguments: Mapping[str, Any]) -> ToolResult:
    """Run a tool by name. Unknown tools and bad arguments raise ToolInputError; an error the
    ledger raises about the arguments (a date range, a currency) becomes one too."""
    tool = _BY_NAME.get(name)
    if tool is None:
        known = ", ".join(sorted(_BY_NAME))
        raise ToolInputError(f"Unknown tool {name!r}; tools: {known}", field="name")
    try:
        return await tool.run(ctx, arguments)
    except ToolInputError:
        raise
    except (BadInput, NotFound) as error:
        raise ToolInputError(error.message, field=error.field) from None
