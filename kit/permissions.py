"""Permission matching, the same in every service and in any backend that
holds only the JWKS: a token's `perms` claim against what an RPC needs.

The one implementation lives in the client library, which backends built on
Tenantry install (clients/python); Tenantry's services use the same code.
"""

from tenantry_client.permissions import WILDCARD_SUFFIX, grants, missing

__all__ = ["WILDCARD_SUFFIX", "grants", "missing"]
