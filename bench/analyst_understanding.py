"""How long the offline analyst takes to read a question, against its parts and its budget.

    PYTHONPATH=. .venv/bin/python -m bench.analyst_understanding [--rounds 200]

Reads the test table's questions (the demo household's names, a fixed day) `--rounds`
times each and prints percentiles of `understand` beside its two main parts measured in the
same run (period parsing alone, name matching alone), the ratio of its p95 to the 5 ms
budget, and what building a workspace's `Vocabulary` costs once.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from domain.advisor.analyst import Vocabulary, find_periods, understand
from tests.advisor.test_understanding import CASES, INJECTIONS, TODAY
from tests.advisor.vocabulary import demo_names

BUDGET_SECONDS = 0.005


def _timings(questions: list[str], rounds: int, read: Callable[[str], object]) -> list[float]:
    for question in questions:
        read(question)
    found = []
    for _ in range(rounds):
        for question in questions:
            started = time.perf_counter()
            read(question)
            found.append(time.perf_counter() - started)
    return sorted(found)


def _row(label: str, timings: list[float]) -> str:
    def ms(q: float) -> str:
        return f"{timings[min(len(timings) - 1, int(len(timings) * q))] * 1000:7.3f}"

    return f"{label:<22}{ms(0.5)}{ms(0.95)}{ms(0.99)}{timings[-1] * 1000:9.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds

    names = demo_names()
    started = time.perf_counter()
    vocabulary = Vocabulary(names)
    built = time.perf_counter() - started
    questions = [case[0] for case in CASES] + INJECTIONS

    whole = _timings(questions, rounds, lambda q: understand(q, today=TODAY, vocabulary=vocabulary))
    periods = _timings(questions, rounds, lambda q: find_periods(q, TODAY))
    matching = _timings(questions, rounds, vocabulary.find)

    print(f"{len(questions)} questions x {rounds} rounds, {len(names)} workspace names")
    print(f"{'ms per question':<22}{'p50':>7}{'p95':>7}{'p99':>7}{'max':>9}")
    print(_row("understand", whole))
    print(_row("  periods alone", periods))
    print(_row("  names alone", matching))
    p95 = whole[int(len(whole) * 0.95)]
    print(f"understand p95 / 5 ms budget: {p95 / BUDGET_SECONDS:.3f}")
    share = statistics.median(periods) + statistics.median(matching)
    print(f"periods + names / understand (medians): {share / statistics.median(whole):.2f}")
    print(f"Vocabulary built once per workspace: {built * 1000:.1f} ms")


if __name__ == "__main__":
    main()
