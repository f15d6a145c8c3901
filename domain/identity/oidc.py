"""Sign-in through external providers: provider settings, and linking identities to users.

The protocol (redirects, code exchange, ID token checks) lives at the edge (api/oidc.py);
this module decides who an identity the provider vouched for is in WealthWise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.crypto import blind_index
from domain.core.db import bind_scope
from domain.core.errors import Forbidden
from domain.core.keys import Keyring
from domain.core.settings import OidcProviderSettings, Settings
from domain.identity import service
from domain.identity.models import OidcIdentity, User
from domain.identity.repository import IdentityRepository

GOOGLE_DISCOVERY = "https://accounts.google.com/.well-known/openid-configuration"
GITHUB_AUTHORIZE = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN = "https://github.com/login/oauth/access_token"
GITHUB_API = "https://api.github.com/"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_NAME = 120


@dataclass(frozen=True)
class OidcProvider:
    """A configured provider with its preset filled in."""

    name: str
    display_name: str
    protocol: Literal["oidc", "github"]
    client_id: str
    client_secret: str
    scopes: str
    server_metadata_url: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    api_base_url: str | None = None

    @property
    def login_path(self) -> str:
        return f"/auth/oidc/{self.name}/login"


def _provider(name: str, config: OidcProviderSettings) -> OidcProvider:
    if not _NAME.match(name):
        raise ValueError(f"OIDC provider name {name!r}: use 1-32 of a-z, 0-9, '-', '_'")
    preset = config.preset or (name if name in ("google", "github") else None)
    secret = config.client_secret.get_secret_value()
    if preset == "github":
        return OidcProvider(
            name=name,
            display_name=config.display_name or "GitHub",
            protocol="github",
            client_id=config.client_id,
            client_secret=secret,
            scopes=config.scopes or "read:user user:email",
            authorize_url=config.authorize_url or GITHUB_AUTHORIZE,
            token_url=config.token_url or GITHUB_TOKEN,
            api_base_url=config.api_base_url or GITHUB_API,
        )
    discovery = config.server_metadata_url or (GOOGLE_DISCOVERY if preset == "google" else None)
    if discovery is None:
        raise ValueError(f"OIDC provider {name!r} needs server_metadata_url (its discovery URL)")
    scopes = config.scopes or "openid email profile"
    if "openid" not in scopes.split():
        raise ValueError(f"OIDC provider {name!r}: the scopes must include 'openid'")
    return OidcProvider(
        name=name,
        display_name=config.display_name or ("Google" if preset == "google" else name),
        protocol="oidc",
        client_id=config.client_id,
        client_secret=secret,
        scopes=scopes,
        server_metadata_url=discovery,
    )


def configured_providers(settings: Settings) -> list[OidcProvider]:
    """The sign-in providers of `WEALTHWISE_OIDC_PROVIDERS`, in the order configured.
    A bad entry raises ValueError, so a misconfigured server fails at start."""
    return [_provider(name, config) for name, config in settings.oidc_providers.items()]


@dataclass(frozen=True)
class ExternalIdentity:
    """What a provider vouched for, after its signature and claims were checked."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


class EmailNotVerified(Forbidden):
    code = "EMAIL_NOT_VERIFIED"


async def sign_in(session: AsyncSession, keyring: Keyring, identity: ExternalIdentity) -> User:
    """The user behind an external identity: the linked one; else the user with the same
    verified email (now linked); else a new user with a household of their own."""
    repository = IdentityRepository(session)
    await bind_scope(session, lookup=f"{identity.provider}:{identity.subject}")
    linked = await repository.oidc_identity(identity.provider, identity.subject)
    if linked is not None:
        await bind_scope(session, user_id=linked.user_id)
        user = await repository.user(linked.user_id)
        assert user is not None  # a foreign key
        return user
    if not identity.email or not identity.email_verified:
        raise EmailNotVerified("The provider did not confirm that this email address is yours")
    email = service.normalise_email(identity.email)
    index = blind_index(await keyring.index_key(session), email)
    await bind_scope(session, lookup=index.hex())
    user = await repository.user_by_email_index(index)
    if user is None:
        user = await service.create_user(
            session, keyring, email=email, name=_display_name(identity, email), password_hash=None
        )
    await bind_scope(session, user_id=user.id)
    session.add(OidcIdentity(provider=identity.provider, subject=identity.subject, user_id=user.id))
    await session.flush()
    return user


def _display_name(identity: ExternalIdentity, email: str) -> str:
    name = " ".join((identity.name or "").split())
    return (name or email.split("@", 1)[0])[:MAX_NAME]
