"""What every service does the same way: health, reflection, request ids, logs, errors."""

from __future__ import annotations

import json
import os
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tenantry.tenants.v1 import tenants_service_pb2

from devtools.stack import ServiceProcess, free_port, service_env
from tests.stack import (
    AUDIT_CHAIN_KEY,
    GATEWAY_TOKEN,
    INTERNAL_API_TOKEN,
    OPERATOR_PASSWORD,
    OWNER_PASSWORD,
    Stack,
    bearer,
    rpc_error,
)

SERVICE_NAMES = {
    "auth": ["tenantry.auth.v1.AuthService", "tenantry.auth.v1.AuthInternalService"],
    "tenants": ["tenantry.tenants.v1.TenantService"],
    "audit": ["tenantry.audit.v1.AuditService", "tenantry.audit.v1.AuditIngestService"],
}


def health(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return int(reply.status)


def test_every_service_reports_serving_overall_and_per_service(stack: Stack) -> None:
    for name, services in SERVICE_NAMES.items():
        address = stack.processes[name].address
        for service in ["", *services]:
            assert health(address, service) == health_pb2.HealthCheckResponse.SERVING, (name, service)


def test_reflection_lists_each_services_contracts(stack: Stack) -> None:
    for name, services in SERVICE_NAMES.items():
        with grpc.insecure_channel(stack.processes[name].address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            listed = {service.name for reply in replies for service in reply.list_services_response.service}
        assert set(services) | {"grpc.health.v1.Health"} <= listed


def test_a_service_without_its_database_is_not_serving(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    address = f"127.0.0.1:{free_port()}"
    env = service_env(
        dead,
        INTERNAL_API_TOKEN,
        {"auth": "127.0.0.1:1", "tenants": "127.0.0.1:2", "audit": address},
        audit_chain_key=AUDIT_CHAIN_KEY,
        audit_data_dir=tmp_path / "audit",
    )
    process = ServiceProcess("audit", address, env, log_path=tmp_path / "audit.log")
    process.start()
    try:
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            try:
                status = health(address)
                break
            except grpc.RpcError:
                time.sleep(0.1)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        process.stop()


def test_missing_settings_name_the_variable_and_nothing_else(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from devtools.stack import ROOT, python_path

    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "INTERNAL_API_TOKEN")}
    env.update({"PYTHONPATH": python_path(), "INTERNAL_API_TOKEN": "short"})
    result = subprocess.run([sys.executable, "-m", "services.audit"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr and "INTERNAL_API_TOKEN" in result.stderr
    assert "short" not in result.stderr.replace("at least 16 characters", "")
    assert "Traceback" not in result.stderr


def test_request_id_is_taken_or_made_and_returned(stack: Stack) -> None:
    tenant = stack.create_tenant()
    _, call = stack.tenants.GetMyTenant.with_call(
        tenants_service_pb2.GetMyTenantRequest(), metadata=(*bearer(tenant.owner_token), ("x-request-id", "my-id-123"))
    )
    assert dict(call.trailing_metadata())["x-request-id"] == "my-id-123"
    _, call = stack.tenants.GetMyTenant.with_call(
        tenants_service_pb2.GetMyTenantRequest(), metadata=(*bearer(tenant.owner_token), ("x-request-id", "bad id !"))
    )
    generated = dict(call.trailing_metadata())["x-request-id"]
    assert generated and generated != "bad id !"
    error = rpc_error(lambda: stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest()))
    assert dict(error.trailing_metadata())["x-request-id"]


def test_logs_are_one_json_object_per_line_without_secrets(stack: Stack) -> None:
    tenant = stack.create_tenant()
    stack.tenants.GetMyTenant(
        tenants_service_pb2.GetMyTenantRequest(),
        metadata=(*bearer(tenant.owner_token), ("x-request-id", "log-check-1")),
    )
    time.sleep(0.2)
    secrets = [OWNER_PASSWORD, OPERATOR_PASSWORD, INTERNAL_API_TOKEN, GATEWAY_TOKEN]
    secrets += [tenant.owner_token, tenant.owner_refresh]
    rpc_lines = []
    for name in ("auth", "tenants", "audit"):
        text = (stack.log_dir / f"{name}.log").read_text()
        for secret in secrets:
            assert secret not in text, name
        assert "Traceback" not in text and "eyJhbGciOi" not in text
        for line in text.splitlines():
            entry = json.loads(line)
            if entry["message"] == "rpc":
                rpc_lines.append(entry)
    (entry,) = [line for line in rpc_lines if line["request_id"] == "log-check-1"]
    assert entry["method"] == "/tenantry.tenants.v1.TenantService/GetMyTenant"
    assert entry["status"] == "OK" and entry["duration_ms"] >= 0
    assert entry["tenant_id"] == tenant.id and entry["user_id"]
