"""The registry of encrypted columns names every `*_enc` column of every model."""

from __future__ import annotations

import importlib
import pkgutil

from sqlmodel import SQLModel

import domain
from domain.encryption.registry import APPEND_ONLY, ENCRYPTED


def _every_model_table() -> dict[str, set[str]]:
    for module in pkgutil.walk_packages(domain.__path__, "domain."):
        importlib.import_module(module.name)
    return {
        table.name: {column.name for column in table.columns}
        for table in SQLModel.metadata.tables.values()
    }


def test_every_encrypted_column_of_every_model_is_registered() -> None:
    sealed = {
        (table, column)
        for table, columns in _every_model_table().items()
        for column in columns
        if column.endswith("_enc")
    }
    registered = {
        (entry.name, f"{field}_enc")
        for entry in (*ENCRYPTED, *APPEND_ONLY)
        for field in entry.fields
    }
    assert sealed - registered == set(), "add these columns to domain/encryption/registry.py"
    assert registered - sealed == set(), "the registry names columns that do not exist"
    assert ("transactions", "payee_enc") in sealed


def test_each_registered_owner_column_exists() -> None:
    tables = _every_model_table()
    for entry in (*ENCRYPTED, *APPEND_ONLY):
        if entry.owner != "system":
            assert entry.owner in tables[entry.name], entry
