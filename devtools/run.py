"""`make run`: Tenantry on this machine, with an embedded database unless DATABASE_URL is set."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from devtools import examples as example_services
from devtools.mail_catcher import start_mail_catcher
from devtools.postgres import create_database, start_embedded
from devtools.stack import (
    ROOT,
    SERVICES,
    ServiceProcess,
    gateway_env,
    http_healthy,
    port_taken,
    service_env,
    service_identities,
)
from kit import migrations

# Generated secrets and the embedded database; TENANTRY_DATA_DIR moves them (tests do).
DATA_DIR = Path(os.environ.get("TENANTRY_DATA_DIR") or ROOT / ".data")
OPERATOR_PASSWORD_FILE = DATA_DIR / "platform-admin-password"
DEFAULT_OPERATOR_EMAIL = "admin@tenantry.local"
# Where each process listens, and the variable that moves it.
LISTEN_VARIABLES = {
    "auth": ("AUTH_LISTEN_ADDR", "127.0.0.1:50051"),
    "tenants": ("TENANTS_LISTEN_ADDR", "127.0.0.1:50052"),
    "audit": ("AUDIT_LISTEN_ADDR", "127.0.0.1:50053"),
}


def secret_file(path: Path, size: int) -> str:
    """A generated secret, kept across runs in the data folder (never printed)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(size))
        path.chmod(0o600)
    return path.read_text().strip()


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def operator_password() -> tuple[str, str]:
    """The password `make run` gives the operator, and where it comes from."""
    given = os.environ.get("PLATFORM_ADMIN_PASSWORD")
    if given:
        return given, "PLATFORM_ADMIN_PASSWORD"
    return secret_file(OPERATOR_PASSWORD_FILE, 18), shown(OPERATOR_PASSWORD_FILE)


def listen_addresses() -> tuple[dict[str, str], str]:
    services = {name: os.environ.get(variable) or default for name, (variable, default) in LISTEN_VARIABLES.items()}
    gateway = f"{os.environ.get('GATEWAY_HOST') or '127.0.0.1'}:{os.environ.get('GATEWAY_PORT') or '8080'}"
    return services, gateway


def refuse_taken_ports(services: dict[str, str], gateway: str) -> None:
    wanted = [(address, LISTEN_VARIABLES[name][0], name) for name, address in services.items()]
    wanted.append((gateway, "GATEWAY_PORT", "gateway"))
    taken = [(address, variable, name) for address, variable, name in wanted if port_taken(address)]
    if taken:
        lines = "\n".join(f"  {address} ({name}, set by {variable}) is taken" for address, variable, name in taken)
        sys.exit(
            f"make run: a port Tenantry needs is in use:\n{lines}\n"
            "Another `make run` may be up (stop it with Ctrl-C), or choose free ports, e.g.\n"
            "  GATEWAY_PORT=8090 AUTH_LISTEN_ADDR=127.0.0.1:50061 TENANTS_LISTEN_ADDR=127.0.0.1:50062"
            " AUDIT_LISTEN_ADDR=127.0.0.1:50063 make run"
        )


def operator_line(auth_address: str, email: str, password: str, source: str) -> str:
    """The banner's operator line, checked by logging in: the database keeps the password it was created with."""
    with grpc.insecure_channel(auth_address) as channel:
        auth = auth_service_pb2_grpc.AuthServiceStub(channel)
        try:
            tokens = auth.Login(auth_service_pb2.LoginRequest(email=email, password=password), timeout=30)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAUTHENTICATED:
                return f"  operator {email} (its login could not be checked: {error.code().name})"
            return (
                f"  operator {email}: the database keeps an older password, not the one from {source};\n"
                "           `make reset-operator-password` sets it to that one"
            )
        auth.Logout(auth_service_pb2.LogoutRequest(), metadata=(("authorization", f"Bearer {tokens.access_token}"),))
    return f"  operator {email}, password from {source}"


def main() -> None:
    started = time.monotonic()
    addresses, gateway_address = listen_addresses()
    refuse_taken_ports(addresses, gateway_address)
    # EXAMPLES=tickets also runs that example service, served by the gateway.
    examples = example_services.requested()
    database_url = os.environ.get("DATABASE_URL")
    server = None
    if not database_url:
        server, admin_url = start_embedded(DATA_DIR / "postgres")
        database_url = create_database(admin_url, "tenantry")
    for name in SERVICES:
        migrations.upgrade(name, database_url)

    admin_email = os.environ.get("PLATFORM_ADMIN_EMAIL") or DEFAULT_OPERATOR_EMAIL
    password, password_source = operator_password()
    gateway_token = os.environ.get("GATEWAY_TOKEN") or secret_file(DATA_DIR / "gateway-token", 32)
    env = service_env(
        database_url,
        os.environ.get("INTERNAL_API_TOKEN", ""),  # deprecated: the services call each other as service accounts
        addresses,
        audit_chain_key=os.environ.get("AUDIT_CHAIN_KEY") or secret_file(DATA_DIR / "audit-chain-key", 32),
        audit_data_dir=Path(os.environ.get("AUDIT_DATA_DIR") or DATA_DIR / "audit"),
        gateway_token=gateway_token,
        api_key_hash_key=os.environ.get("API_KEY_HASH_KEY") or secret_file(DATA_DIR / "api-key-hash-key", 32),
    )
    # Months past audit retention are archived here (signed with the checkpoint key in AUDIT_DATA_DIR).
    env["AUDIT_ARCHIVE_DIR"] = os.environ.get("AUDIT_ARCHIVE_DIR") or str(DATA_DIR / "audit-archive")
    env["PLATFORM_ADMIN_EMAIL"] = admin_email
    env["PLATFORM_ADMIN_PASSWORD"] = password
    # Without a mail server, emails go to a local catcher that prints each one's link.
    catcher = None if os.environ.get("SMTP_HOST") else start_mail_catcher()
    if catcher is not None:
        env.update(catcher.smtp_env)

    # Own process groups: Ctrl-C reaches only this supervisor, which stops
    # the gateway first and the services after it.
    # Each service's own platform service account, its secret generated once into .data/.
    identities = service_identities(
        {name: secret_file(DATA_DIR / f"{name}-service-secret", 32) for name in ("tenants", "audit", "examples")}
    )
    services = [
        ServiceProcess(name, addresses[name], {**env, **identities.get(name, {})}, own_process_group=True)
        for name in SERVICES
    ]
    services += example_services.processes(examples, env, identities["examples"], own_process_group=True)
    gateway = ServiceProcess(
        "gateway",
        gateway_address,
        example_services.gateway_env(
            examples, gateway_env(addresses, gateway_address, gateway_token=gateway_token), DATA_DIR / "contracts.binpb"
        ),
        module="gateway",
        probe=http_healthy,
        own_process_group=True,
    )
    processes = [*services, gateway]
    failed = False
    # A closed terminal (SIGHUP) or a kill stops the children too: in their own groups they hear neither.
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    try:
        for process in services:
            process.start()
        for process in services:
            process.wait_serving()
        gateway.start()
        gateway.wait_serving()
        operator = operator_line(addresses["auth"], admin_email, password, password_source)
        # One write, so that whoever waits for the first line finds the whole banner.
        banner = [
            f"\nTenantry is serving ({time.monotonic() - started:.1f}s):",
            *(f"  {process.name:8} grpc://{process.address}" for process in services),
            f"  gateway  http://{gateway_address}  (API docs: http://{gateway_address}/docs)",
            operator,
            *(
                [f"  mail     smtp://127.0.0.1:{catcher.port}  (caught, printed here; SMTP_HOST sends for real)"]
                if catcher is not None
                else []
            ),
            "Ctrl-C stops everything.\n",
        ]
        print("\n".join(banner), flush=True)
        while True:
            stopped = next((p for p in processes if p.process is None or p.process.poll() is not None), None)
            if stopped is not None:
                code = stopped.process.returncode if stopped.process else None
                print(f"{stopped.name} stopped by itself (exit code {code}); stopping the rest", file=sys.stderr)
                failed = True
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    except (RuntimeError, TimeoutError) as error:
        print(f"make run: {error}", file=sys.stderr)
        failed = True
    finally:
        # The gateway first, so no new call arrives; then the services together,
        # so none is left waiting on another that has already gone.
        gateway.stop()
        for process in services:
            process.terminate()
        for process in services:
            process.wait_stopped()
        if catcher is not None:
            catcher.stop()
        if server is not None:
            server.cleanup()
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
