"""The outbox: with the audit service stopped nothing is lost; events arrive once it is back."""

from __future__ import annotations

import uuid

from google.protobuf import field_mask_pb2
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2

from tests.stack import Stack, bearer, eventually


def test_events_made_while_audit_is_down_arrive_after_it_returns(stack: Stack) -> None:
    tenant = stack.create_tenant()
    request_ids = [f"outage-{uuid.uuid4().hex}" for _ in range(5)]
    with stack.service_stopped("audit"):
        for index, request_id in enumerate(request_ids):
            stack.tenants.UpdateMyTenant(
                tenants_service_pb2.UpdateMyTenantRequest(
                    tenant=tenants_pb2.Tenant(name=f"During outage {index}"),
                    update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                ),
                metadata=(*bearer(tenant.owner_token), ("x-request-id", request_id)),
            )
        waiting = stack.sql("SELECT count(*) FROM tenants.outbox WHERE request_id = ANY(%s)", (request_ids,))
        assert waiting[0][0] == 5
    delivered = eventually(
        lambda: stack.sql("SELECT count(*) FROM audit.events WHERE request_id = ANY(%s)", (request_ids,))[0][0] == 5,
        timeout=15,
    )
    assert delivered
    eventually(
        lambda: stack.sql("SELECT count(*) FROM tenants.outbox WHERE request_id = ANY(%s)", (request_ids,))[0][0] == 0
    )
    # Exactly once each, in spite of the retries.
    rows = stack.sql(
        "SELECT request_id, count(*) FROM audit.events WHERE request_id = ANY(%s) GROUP BY 1", (request_ids,)
    )
    assert sorted(count for _, count in rows) == [1] * 5
