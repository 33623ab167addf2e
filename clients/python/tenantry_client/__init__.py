"""Tenantry's client library: what a backend needs to sit behind Tenantry.

Kept import-light: `tenantry_client.permissions` and `tenantry_client.tokens`
need neither gRPC nor SQLAlchemy, so Tenantry's own kit imports them too (one
implementation of permission matching and token checks). The rest:

- `tenantry_client.verifier`: `TenantryVerifier`, keys from auth's JWKS and
  the revocation stream, started and stopped with the application.
- `tenantry_client.grpc_server`: a grpc.aio server interceptor.
- `tenantry_client.asgi`: an ASGI middleware and FastAPI-style dependencies.
- `tenantry_client.context`: the caller (`Principal`) of the current request.
- `tenantry_client.rls`: the tenant bound for row-level security in SQLAlchemy.
- `tenantry_client.audit` and `tenantry_client.outbox`: audit events for the
  tenant's trail, written in the application's own transaction.
"""

__version__ = "0.1.0"
