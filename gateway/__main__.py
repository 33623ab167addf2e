"""`python -m gateway`: the REST gateway in front of Tenantry's services."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from kit.logging import configure_logging


def main() -> None:
    try:
        settings = GatewaySettings()
        gateway = Gateway(settings)
    except (ValidationError, ValueError) as error:
        raise SystemExit(f"gateway: invalid settings: {error}") from None
    configure_logging("gateway", settings.log_level, tracebacks=settings.log_tracebacks)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    address = f"{settings.listen_host}:{settings.listen_port}"

    def listening(_message: str) -> None:
        # run_app "prints" once the socket is bound: only then is "listening" true.
        logging.getLogger("tenantry.http").info("listening", extra={"address": f"http://{address}"})

    try:
        web.run_app(gateway.application(), host=settings.listen_host, port=settings.listen_port, print=listening)
    except OSError as error:
        reason = error.strerror or str(error)
        raise SystemExit(f"gateway: cannot listen on {address} (GATEWAY_HOST, GATEWAY_PORT): {reason}") from None


if __name__ == "__main__":
    main()
