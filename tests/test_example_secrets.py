"""A service started with deploy/docker-compose.yml's stand-in secrets says so, loudly, naming each variable."""

from __future__ import annotations

from pathlib import Path

from devtools.stack import ServiceProcess, free_port, service_env
from tests.stack import Stack, eventually


def test_a_service_on_example_secrets_warns_naming_each_variable(database_url: str, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    addresses = {"auth": f"127.0.0.1:{free_port()}", "tenants": f"127.0.0.1:{free_port()}", "audit": address}
    env = service_env(
        database_url,
        "change-this-internal-token",
        addresses,
        audit_chain_key="change-this-audit-chain-key",
        audit_data_dir=tmp_path / "audit",
    )
    audit = ServiceProcess("audit", address, env, log_path=tmp_path / "audit.log")
    audit.start()
    log = tmp_path / "audit.log"
    try:
        # No auth runs here, so audit never serves (no revocation snapshot): the warnings come at start regardless.
        eventually(lambda: log.exists() and log.read_text().count("INSECURE") >= 2, timeout=20)
    finally:
        audit.stop()
    warnings = [line for line in log.read_text().splitlines() if "INSECURE" in line]

    assert any("INTERNAL_API_TOKEN holds a published example value" in line for line in warnings), warnings
    assert any("AUDIT_CHAIN_KEY holds a published example value" in line for line in warnings), warnings
    assert len(warnings) == 2 and not any("change-this-internal-token" in line for line in warnings)


def test_a_service_on_its_own_secrets_does_not_warn(stack: Stack) -> None:
    for name in ("auth", "tenants", "audit"):
        assert "INSECURE" not in (stack.log_dir / f"{name}.log").read_text()
