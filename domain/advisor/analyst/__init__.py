"""The offline analyst: the advisor's default when no Anthropic key is set.

No model and no download: it reads a question with rules (`understand`), runs the same
tools as the Claude adapter, and composes the answer from their results.

The provider (`domain.advisor.analyst.provider`: `OfflineAnalyst`, `build_vocabulary`,
`offline_provider`) plays the model in `converse`: round 1 plans the tool calls, round 2
writes the answer from their results (`composer`, worded by `wording`). It is imported
from its module, not from here, so that reading questions stays free of database imports.

The first half, question understanding:

    plan = understand(question, today=ctx.today, vocabulary=Vocabulary(names), currency="INR")

`Vocabulary` is built once per workspace from its own names, each a
`Name(id, name, kind)` with kind "category", "payee" or "account" (payees have no id:
pass the name as the id).

What the answer composer (round 2) receives:
- `plan.intent`: the `Intent` (a tool name, or CANNOT_ANSWER);
- `plan.calls`: `PlannedCall(name, arguments)` in order; the provider emits each as a
  `ToolCall(id, name, input=arguments)` and gets one `ToolResult` back per call
  (`data` with money as {"amount", "currency"}, `transaction_ids` to cite);
- `plan.periods`: each period's inclusive `start`/`end`, the question's own words for it
  (`phrase`, e.g. "last quarter") and `partial` (it runs only to today), to say which
  dates the figures cover; for compare_periods, `periods[0]` is `first`, `[1]` `second`;
- `plan.matched_names`: which workspace names the question was read as naming
  (`phrase` -> `name`, and `via` "name" | "synonym" | "part"), to say "groceries (your
  category Groceries)" when the match was not literal;
- `plan.notes`: assumptions to state in the answer (default period, 0% return, a rate read
  from "at 8", a partial period);
- `plan.missing` (with `calls` empty): what the user must add for a calculation;
- `plan.suggestions`: questions it can answer, in the workspace's words, for
  CANNOT_ANSWER and for `missing`.
"""

from domain.advisor.analyst.names import Name, NameMatch, Vocabulary
from domain.advisor.analyst.periods import Period, find_periods
from domain.advisor.analyst.understanding import Intent, Plan, PlannedCall, understand

__all__ = [
    "Intent",
    "Name",
    "NameMatch",
    "Period",
    "Plan",
    "PlannedCall",
    "Vocabulary",
    "find_periods",
    "understand",
]
