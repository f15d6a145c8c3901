"""Per-operation limits from the settings: depth, aliases, tokens, introspection."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule

from domain.core.settings import Settings

# Without an app (schema.execute in a script): the defaults, not the environment.
DEFAULTS = Settings.model_construct()


@cache
def limit_rules(
    max_depth: int, max_aliases: int, introspection: bool
) -> tuple[type[ASTValidationRule], ...]:
    """Built once per combination: Strawberry's limiters make a new rule class per call,
    which would defeat the validation cache (its key includes the rule classes)."""
    rules: list[type[ASTValidationRule]] = [
        max_depth_rule(max_depth, None),
        max_aliases_rule(max_aliases),
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


class OperationLimits(SchemaExtension):
    """Strawberry's depth/alias/token limiters and DisableIntrospection, but configured from
    the app's settings (the schema is built once at import, before any settings exist)."""

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        services = getattr(execution.context, "services", None)
        settings: Settings = getattr(services, "settings", DEFAULTS)
        execution.validation_rules = execution.validation_rules + limit_rules(
            settings.graphql_max_depth,
            settings.graphql_max_aliases,
            settings.introspection_enabled,
        )
        execution.parse_options["max_tokens"] = settings.graphql_max_tokens
        yield
