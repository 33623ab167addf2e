"""Tenantry's services call each other as platform service accounts with named permissions."""

from __future__ import annotations

import uuid

import grpc
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import auth_service_pb2
from tenantry.auth.v1 import service_accounts_service_pb2 as pb

from kit.service_identity import platform_account_id, platform_client_id
from tests.auth.test_service_accounts import accounts, basic, new_account, new_secret, oauth, token_with_secret
from tests.stack import SERVICE_SECRETS, Stack, bearer, eventually, rpc_error


def service_token(stack: Stack, name: str) -> str:
    return token_with_secret(stack, platform_client_id(name), SERVICE_SECRETS[name]).access_token


def provision(stack: Stack, token: str) -> auth_service_pb2.ProvisionTenantOwnerResponse:
    slug = f"si-{uuid.uuid4().hex[:8]}"
    return stack.auth_internal.ProvisionTenantOwner(
        auth_service_pb2.ProvisionTenantOwnerRequest(
            tenant_id=str(uuid.uuid4()),
            tenant_slug=slug,
            email=f"o@{slug}.test",
            full_name="O",
            password="pw-123456789",
        ),
        metadata=bearer(token),
        timeout=10,
    )


def test_internal_calls_need_the_named_permission_of_a_platform_account(stack: Stack) -> None:
    # The tenants service's own account provisions owners; the audit service's may not.
    assert provision(stack, service_token(stack, "tenants")).owner_status
    refused = rpc_error(lambda: provision(stack, service_token(stack, "audit")))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED and "auth.provision_owner" in refused.details()

    # An operator-made platform account holding audit.ingest only: ingest yes, revocations no.
    operator = stack.operator_token()
    account = new_account(stack, operator, "audit.ingest")
    token = token_with_secret(stack, account.client_id, new_secret(stack, operator, account).client_secret).access_token
    stack.audit_ingest.AppendAuditEvents(
        audit_service_pb2.AppendAuditEventsRequest(), metadata=bearer(token), timeout=10
    )
    stream = stack.auth_internal.WatchRevocations(auth_service_pb2.WatchRevocationsRequest(), metadata=bearer(token))
    assert rpc_error(lambda: next(iter(stream))).code() == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(lambda: provision(stack, token)).code() == grpc.StatusCode.PERMISSION_DENIED


def test_tenant_tokens_and_no_token_never_pass_an_internal_rpc(stack: Stack) -> None:
    tenant = stack.create_tenant("si")
    # Even an owner holding everything of a tenant, or a tenant's account, is no platform service.
    account = new_account(stack, tenant.owner_token, "tenant.read")
    tenant_account = token_with_secret(
        stack, account.client_id, new_secret(stack, tenant.owner_token, account).client_secret
    ).access_token
    for token in (tenant.owner_token, tenant_account, stack.operator_token()):
        assert rpc_error(lambda t=token: provision(stack, t)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(lambda: provision(stack, "not-a-token")).code() == grpc.StatusCode.UNAUTHENTICATED
    nothing = rpc_error(
        lambda: stack.audit_ingest.AppendAuditEvents(audit_service_pb2.AppendAuditEventsRequest(), timeout=10)
    )
    assert nothing.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_services_own_calls_run_as_their_accounts(stack: Stack) -> None:
    """Creating a tenant goes tenants -> auth (provisioning) and both outboxes -> audit, all with tokens
    from the grant: auth records each issuance of the tenants service's token."""
    stack.create_tenant("si-own")
    tenants_account = str(platform_account_id("tenants"))
    issued = stack.sql(
        "SELECT count(*) FROM auth.service_account_credentials WHERE account_id = %s AND last_used_at IS NOT NULL",
        (tenants_account,),
    )
    assert issued[0][0] == 1

    # The calls ran as its account (auth logs each RPC's caller), not on the deprecated shared token.
    def provisioned_by_account() -> bool:
        lines = (stack.log_dir / "auth.log").read_text().splitlines()
        return any("/ProvisionTenantOwner" in line and f'"user_id": "{tenants_account}"' in line for line in lines)

    eventually(provisioned_by_account)


def test_rotating_one_services_secret_leaves_the_others_working(stack: Stack) -> None:
    """A platform account's secret rotated by the operator: the old one is refused, the others still work."""
    operator = stack.operator_token()
    first, second = new_account(stack, operator, "audit.ingest"), new_account(stack, operator, "audit.ingest")
    first_secret = new_secret(stack, operator, first).client_secret
    second_secret = new_secret(stack, operator, second).client_secret
    accounts(stack).RotateServiceAccountSecret(
        pb.RotateServiceAccountSecretRequest(id=first.id), metadata=bearer(operator)
    )
    refused = rpc_error(
        lambda: oauth(stack).CreateToken(
            pb.CreateTokenRequest(grant_type="client_credentials"),
            metadata=basic(first.client_id, first_secret),
            timeout=10,
        )
    )
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    token = token_with_secret(stack, second.client_id, second_secret).access_token
    stack.audit_ingest.AppendAuditEvents(
        audit_service_pb2.AppendAuditEventsRequest(), metadata=bearer(token), timeout=10
    )
    # And Tenantry's own services are untouched.
    assert service_token(stack, "tenants") and service_token(stack, "audit")


def test_every_internal_rpc_names_the_permissions_it_needs() -> None:
    """Declarative and closed: no internal RPC lets any platform account in just for being one."""
    from tenantry.common.v1 import access_pb2

    from kit.access import access_rules

    rules = access_rules(
        auth_service_pb2.DESCRIPTOR.services_by_name["AuthInternalService"],
        audit_service_pb2.DESCRIPTOR.services_by_name["AuditIngestService"],
    )
    assert rules and all(rule.audience == access_pb2.AUDIENCE_INTERNAL for rule in rules.values())
    assert all(rule.permissions for rule in rules.values()), rules
    assert rules["/tenantry.audit.v1.AuditIngestService/AppendAuditEvents"].permissions == ["audit.ingest"]
    assert rules["/tenantry.auth.v1.AuthInternalService/WatchRevocations"].permissions == ["auth.revocations.watch"]
