"""Who may call an RPC whose contract does not say: the gateway's access policy.

Tenantry's contracts declare every RPC's rule with `(tenantry.common.v1.access)`.
Another team's contract usually does not; for its RPCs the operator sets a rule
per package, service or method in `GATEWAY_ACCESS_POLICY`:

    conf.v1=public;acme.tickets.v1.TicketService=authenticated;acme.tickets.v1.TicketService.Purge=deny

The longest name that is the RPC's full name or one of its dotted prefixes
wins. An RPC that no entry names needs a valid access token (fail closed). A
rule written in the contract always wins over the policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

SETTING = "GATEWAY_ACCESS_POLICY"
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class PolicyAccess(Enum):
    # Anyone. A bearer token, when one is sent, is verified all the same and
    # its identity passed on (an invalid token is refused, never ignored).
    PUBLIC = "public"
    # A valid access token, checked at the edge; its tenant and user are passed on.
    AUTHENTICATED = "authenticated"
    # Not served at all: no route, not in the OpenAPI document (404, like an unknown path).
    DENY = "deny"


DEFAULT_ACCESS = PolicyAccess.AUTHENTICATED


@dataclass(frozen=True)
class AccessPolicy:
    entries: dict[str, PolicyAccess]

    def access_for(self, method_full_name: str) -> PolicyAccess:
        key = self.entry_for(method_full_name)
        return self.entries[key] if key is not None else DEFAULT_ACCESS

    def entry_for(self, method_full_name: str) -> str | None:
        """The most specific entry naming the method, its service or a package around it."""
        matches = [key for key in self.entries if _names(key, method_full_name)]
        return max(matches, key=len) if matches else None

    def check_every_entry_is_used(self, methods_without_rule: Iterable[str]) -> None:
        """An entry naming no RPC that the policy governs is a typo or a stale
        line; refused at start-up, so nobody believes a rule is in force that is not."""
        methods = list(methods_without_rule)
        for key, access in self.entries.items():
            if not any(_names(key, method) for method in methods):
                raise ValueError(
                    f"{SETTING}: entry '{key}={access.value}' names no RPC of the loaded descriptor sets "
                    "that has a google.api.http binding and no (tenantry.common.v1.access) rule "
                    "(a contract's own rule always wins)"
                )


def _names(key: str, method_full_name: str) -> bool:
    return method_full_name == key or method_full_name.startswith(key + ".")


def parse_access_policy(text: str) -> AccessPolicy:
    """`NAME=ACCESS` entries separated by ';' (or new lines); refuses anything else, naming the entry."""
    entries: dict[str, PolicyAccess] = {}
    for raw in filter(None, (part.strip() for part in re.split(r"[;\n]", text))):
        name, separator, value = (part.strip() for part in raw.partition("="))
        if not separator or not name:
            raise ValueError(f"{SETTING}: entry '{raw}' is not NAME=public|authenticated|deny")
        if not _DOTTED_NAME.fullmatch(name):
            raise ValueError(f"{SETTING}: entry '{raw}': '{name}' is not a package, service or method name")
        try:
            access = PolicyAccess(value.lower())
        except ValueError:
            raise ValueError(f"{SETTING}: entry '{raw}': '{value}' is not one of public, authenticated, deny") from None
        if name in entries:
            raise ValueError(f"{SETTING}: '{name}' is given twice")
        entries[name] = access
    return AccessPolicy(entries)
