"""Sign-in providers for the web client's buttons (the flow itself is in api/oidc.py)."""

from __future__ import annotations

import strawberry

from domain.identity.oidc import configured_providers
from schema.context import Info


@strawberry.type(description="An external sign-in provider (Google, GitHub, any OIDC provider).")
class LoginProvider:
    name: str
    display_name: str
    login_url: str = strawberry.field(
        description="Open it in the browser (a top-level navigation, not fetch) to sign in."
    )


@strawberry.type
class OidcQuery:
    @strawberry.field(description="The configured sign-in providers; needs no session.")
    def login_providers(self, info: Info) -> list[LoginProvider]:
        return [
            LoginProvider(name=p.name, display_name=p.display_name, login_url=p.login_path)
            for p in configured_providers(info.context.services.settings)
        ]
