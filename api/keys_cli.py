"""`wealthwise keys ...`: rotate the KEK and the data keys, show their state, purge old ones.

These run as the table owner (the admin database URL), never through the API.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.core.crypto import DecryptionError, load_key_file, write_key_file
from domain.core.db import create_engine
from domain.core.errors import DomainError
from domain.core.keys import Keyring, kek_file
from domain.core.settings import Settings, get_settings
from domain.encryption import rotation

keys_app = typer.Typer(help="Rotate and inspect the encryption keys.", no_args_is_help=True)
T = TypeVar("T")


def _run(settings: Settings, job: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings, owner=True)
        try:
            return await job(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (rotation.RotationError, DomainError, DecryptionError, LookupError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: what is done stays done; run the command again", err=True)
        raise typer.Exit(130) from None


def _workspace(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    from schema.ids import decode_id

    try:
        return decode_id(value, "Workspace", field="workspace")
    except DomainError as error:
        raise typer.BadParameter(str(error)) from None


@keys_app.command()
def rotate(
    kek: bool = typer.Option(True, "--kek/--no-kek", help="Re-wrap every data key (new KEK)."),
    data_keys: bool = typer.Option(
        True, "--data-keys/--no-data-keys", help="New data keys; re-encrypt every row."
    ),
    workspace: str | None = typer.Option(
        None, "--workspace", help="Rotate only this workspace's data key (UUID or global id)."
    ),
    batch_size: int = typer.Option(500, min=1, max=10_000, help="Rows per transaction."),
) -> None:
    """Rotate keys while the API keeps serving; run it again to finish an interrupted run."""
    settings = get_settings()
    workspace_id = _workspace(workspace)

    async def job(engine: AsyncEngine) -> None:
        keyring = Keyring.from_settings(settings)
        if kek:
            keyring = await rotation.rotate_kek(engine, settings, typer.echo)
        if data_keys:
            done = await rotation.rotate_data_keys(
                engine,
                keyring,
                workspace_id=workspace_id,
                batch_size=batch_size,
                report=typer.echo,
            )
            rows = sum(result.reencrypted for result in done)
            typer.echo(f"rotated the data keys of {len(done)} key owner(s); {rows} rows re-sealed")

    _run(settings, job)


@keys_app.command()
def status() -> None:
    """Key ids per owner, their state and KEK, and how many ciphertexts name each."""
    settings = get_settings()
    keyring = Keyring.from_settings(settings)

    async def job(engine: AsyncEngine) -> list[rotation.KeyState]:
        return await rotation.key_status(engine, keyring)

    states = _run(settings, job)
    previous = ", ".join(key.key_id for key in keyring.previous) or "none"
    typer.echo(f"KEK: active {keyring.kek.key_id}, previous {previous}")
    wrapped = Counter(state.kek_id for state in states)
    for kek_id, count in sorted(wrapped.items()):
        mark = " (active)" if kek_id == keyring.kek.key_id else " (NOT the active KEK)"
        typer.echo(f"  {count} data key(s) wrapped by {kek_id}{mark}")
    also = sum(1 for state in states if state.previous_kek_id)
    if also:
        typer.echo(f"  {also} also wrapped by a previous KEK (until `keys purge-retired`)")
    typer.echo(f"{'owner':<48} {'purpose':<7} {'key':>4} {'state':<8} {'ciphertexts':>11}")
    for state in states:
        owner = rotation.owner_label(state.owner)
        typer.echo(
            f"{owner:<48} {state.purpose:<7} {state.key_id:>4} {state.state:<8} "
            f"{state.ciphertexts:>11}"
        )


@keys_app.command("purge-retired")
def purge_retired() -> None:
    """Destroy retired data keys and the previous KEK's wrappings (refuses while needed)."""
    settings = get_settings()
    keyring = Keyring.from_settings(settings)

    async def job(engine: AsyncEngine) -> rotation.Purged:
        return await rotation.purge_retired(engine, keyring)

    purged = _run(settings, job)
    typer.echo(
        f"destroyed {purged.data_keys} retired data key(s) and "
        f"{purged.previous_wrappings} wrapping(s) by a previous KEK"
    )
    if purged.kept_for_audit:
        typer.echo(
            f"kept {purged.kept_for_audit} retired data key(s) for decryption only: "
            "the append-only audit trail still names them"
        )
    if settings.kek is None:
        path = kek_file(settings)
        if len(load_key_file(path)) > 1:
            write_key_file(path, [keyring.kek])
            typer.echo(f"removed the previous KEK from {path}")
    elif settings.kek_previous is not None:
        typer.echo("WEALTHWISE_KEK_PREVIOUS is no longer needed: remove it")
