"""The command line of every service: `python -m services.<name> [serve|migrate|downgrade REV|COMMAND ...]`."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Mapping

from pydantic import AliasChoices, SecretStr, ValidationError

from kit import migrations
from kit.logging import configure_logging
from kit.server import ServiceHost, serve
from kit.settings import ServiceSettings
from kit.workers import this_worker

# deploy/docker-compose.yml's stand-in secrets all carry this mark.
EXAMPLE_SECRET_MARK = "change-this-"
USAGE = "usage: python -m services.{name} [serve | migrate [REVISION] | downgrade REVISION{extra}]"

# A service's own operator commands: called with the settings and the arguments after the command's name.
Command = Callable[[ServiceSettings, list[str]], None]


def main(
    name: str,
    settings_class: type[ServiceSettings],
    build: Callable[[ServiceSettings], ServiceHost],
    commands: Mapping[str, Command] | None = None,
) -> None:
    commands = commands or {}
    args = sys.argv[1:] or ["serve"]
    try:
        settings = settings_class()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as error:
        # Name the variables that are wrong, never their values.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SystemExit(f"{name}: invalid settings: {problems}") from None
    configure_logging(
        name,
        settings.log_level,
        tracebacks=settings.log_tracebacks,
        worker=this_worker().log_label(settings.workers) if args[0] == "serve" else None,
    )
    if args[0] == "serve" and len(args) == 1:
        _warn_about_example_secrets(settings)
        asyncio.run(_serve(build, settings))
    elif args[0] == "migrate" and len(args) <= 2:
        _migrate(name, lambda: migrations.upgrade(name, settings.database_url, args[1] if len(args) == 2 else "head"))
    elif args[0] == "downgrade" and len(args) == 2:
        _migrate(name, lambda: migrations.downgrade(name, settings.database_url, args[1]))
    elif args[0] in commands:
        commands[args[0]](settings, args[1:])
    else:
        raise SystemExit(USAGE.format(name=name, extra="".join(f" | {command} ..." for command in commands)))


def _warn_about_example_secrets(settings: ServiceSettings) -> None:
    """Loud, at every start: a secret everyone can read in the repository protects nothing."""
    for field_name, field in type(settings).model_fields.items():
        value = getattr(settings, field_name)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not (isinstance(text, str) and EXAMPLE_SECRET_MARK in text):
            continue
        alias = field.validation_alias
        variable = " or ".join(map(str, alias.choices)) if isinstance(alias, AliasChoices) else str(alias or field_name)
        if field_name.endswith("database_url"):
            variable = f"the password in {variable} (POSTGRES_PASSWORD in docker compose)"
        logging.getLogger("tenantry.settings").warning(
            f"INSECURE: {variable} holds a published example value ({EXAMPLE_SECRET_MARK}...);"
            " anyone who read deploy/docker-compose.yml knows it. Set your own value (see .env.example)",
            extra={"setting": variable},
        )


def _migrate(name: str, run: Callable[[], None]) -> None:
    log = logging.getLogger("tenantry.migrations")
    try:
        run()
    except Exception:
        # The error type, not the traceback: it may quote SQL and parameters.
        log.error("migration failed", exc_info=True, extra={"service": name})
        raise SystemExit(1) from None
    log.info("migrated", extra={"service": name})


async def _serve(build: Callable[[ServiceSettings], ServiceHost], settings: ServiceSettings) -> None:
    # Built inside the running loop: grpc.aio channels bind to the loop they are made in.
    await serve(build(settings))
