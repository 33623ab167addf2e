"""Permission matching, the same in every service and in any backend that
holds only the JWKS: a token's `perms` claim against what an RPC needs."""

from __future__ import annotations

from collections.abc import Iterable

WILDCARD_SUFFIX = ".*"


def grants(held: Iterable[str], needed: str) -> bool:
    """Whether the held permissions cover needed.

    A held "x.*" covers every permission under "x." (and a needed "x.y.*",
    which is itself a set under x), but not "x" itself.
    """
    for permission in held:
        if permission == needed:
            return True
        if permission.endswith(WILDCARD_SUFFIX) and needed.startswith(permission[:-1]):
            return True
    return False


def missing(held: Iterable[str], needed: Iterable[str]) -> list[str]:
    """The needed permissions that held does not cover, in order."""
    held = list(held)
    return [permission for permission in needed if not grants(held, permission)]
