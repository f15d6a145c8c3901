"""Benchmarks: run them as modules (`python -m bench.ledger_api`); see bench/README.md."""
