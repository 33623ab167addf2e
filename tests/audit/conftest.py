from __future__ import annotations

import pytest

from tests.audit.tampering import append, event, outbox_drained
from tests.stack import Stack, Tenant, eventually


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    """A tenant with five events of its own, and nothing more on the way.

    Creating a tenant and logging its owner in leave events in the services'
    outboxes, which the relays deliver whenever they run: a test that changes
    the end of the chain must not race them."""
    created = stack.create_tenant("chain")
    append(stack, *(event(created.id) for _ in range(5)))
    eventually(lambda: outbox_drained(stack, created.id), timeout=15)
    return created
