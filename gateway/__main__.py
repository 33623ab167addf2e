"""`python -m gateway`: the REST gateway in front of Tenantry's services."""

from __future__ import annotations

from pydantic import ValidationError

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from gateway.workers import serve
from kit.logging import configure_logging
from kit.workers import this_worker


def main() -> None:
    try:
        settings = GatewaySettings()
        gateway = Gateway(settings)
    except (ValidationError, ValueError) as error:
        raise SystemExit(f"gateway: invalid settings: {error}") from None
    configure_logging(
        "gateway",
        settings.log_level,
        tracebacks=settings.log_tracebacks,
        worker=this_worker().log_label(settings.workers),
    )
    serve(settings, gateway)


if __name__ == "__main__":
    main()
