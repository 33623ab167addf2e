"""What the gateway refuses to start with: a bad access policy, two routes of
one shape, two sets that disagree on a file; and what it loads once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.descriptor_set import build
from devtools.stack import ROOT, free_port, python_path
from gateway.access_policy import PolicyAccess, parse_access_policy
from gateway.descriptor_sets import descriptor_set_paths
from gateway.descriptors import Contracts
from gateway.jwks import JwksSource
from gateway.routes import RouteTable, check_no_clashes
from gateway.upstreams import Upstreams
from tests.gateway.foreign import CONF_PROTO, PROTOS, TICKETS_PROTO, build_set

TENANTRY_SET = ROOT / "gen" / "tenantry.binpb"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loading")


@pytest.fixture(scope="module")
def tickets_set(folder: Path) -> Path:
    return build_set(folder / "tickets.binpb", TICKETS_PROTO)


@pytest.fixture(scope="module")
def conf_set(folder: Path) -> Path:
    return build_set(folder / "conf.binpb", CONF_PROTO)


def routes_of(contracts: Contracts) -> set[tuple[str, str]]:
    return {(binding.http_method, binding.template.source) for binding in contracts.bindings}


def test_the_most_specific_policy_entry_wins_and_the_default_is_authenticated() -> None:
    policy = parse_access_policy(
        "acme=deny; acme.tickets.v1=public\nacme.tickets.v1.TicketService.Purge=deny;"
        "acme.tickets.v1.TicketServiceAdmin=authenticated"
    )
    assert policy.access_for("acme.tickets.v1.TicketService.GetTicket") == PolicyAccess.PUBLIC
    assert policy.access_for("acme.tickets.v1.TicketService.Purge") == PolicyAccess.DENY
    assert policy.access_for("acme.tickets.v1.TicketService.PurgeAll") == PolicyAccess.PUBLIC
    assert policy.access_for("acme.tickets.v1.TicketServiceAdmin.Reset") == PolicyAccess.AUTHENTICATED
    assert policy.access_for("acme.billing.v1.BillingService.Pay") == PolicyAccess.DENY
    assert policy.access_for("acmex.v1.Service.Method") == PolicyAccess.AUTHENTICATED
    assert parse_access_policy("").access_for("any.v1.Service.Method") == PolicyAccess.AUTHENTICATED


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("conf.v1", "'conf.v1'"),
        ("conf.v1=open", "'open'"),
        ("=public", "'=public'"),
        ("conf v1=public", "'conf v1'"),
        ("conf.v1.=public", "'conf.v1.'"),
        ("conf.v1=public;conf.v1=deny", "'conf.v1' is given twice"),
    ],
)
def test_a_malformed_policy_entry_is_refused_naming_it(setting: str, named: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_ACCESS_POLICY") as refused:
        parse_access_policy(setting)
    assert named in str(refused.value)


def test_a_policy_entry_naming_no_rpc_without_a_rule_is_refused(tickets_set: Path) -> None:
    with pytest.raises(ValueError, match=r"'acme\.tikets\.v1=public' names no RPC"):
        Contracts([tickets_set], parse_access_policy("acme.tikets.v1=public"))
    # Tenantry's RPCs carry their own rule: the policy cannot loosen them.
    with pytest.raises(ValueError, match=r"'tenantry\.auth\.v1=public' names no RPC"):
        Contracts([TENANTRY_SET, tickets_set], parse_access_policy("tenantry.auth.v1=public"))


def test_the_contracts_own_rule_wins_over_the_policy(tickets_set: Path) -> None:
    contracts = Contracts([TENANTRY_SET, tickets_set], parse_access_policy("acme=public"))
    rpcs = {binding.rpc.method.full_name: binding.rpc for binding in contracts.bindings}
    assert rpcs["acme.tickets.v1.TicketService.GetTicket"].public
    assert rpcs["acme.tickets.v1.TicketService.GetTicket"].by_policy
    get_me = rpcs["tenantry.auth.v1.AuthService.GetMe"]
    assert not get_me.public and not get_me.by_policy


def test_two_sets_load_as_one_and_shared_files_load_once(tickets_set: Path, conf_set: Path, folder: Path) -> None:
    both = build_set(folder / "both.binpb", TICKETS_PROTO, CONF_PROTO)
    # tickets.proto and Google's files come twice: in tickets_set and in both.
    contracts = Contracts([TENANTRY_SET, tickets_set, both], parse_access_policy("conf.v1=public"))
    expected = {("GET", "/v1/{name=tickets/*}"), ("GET", "/v1/config"), ("POST", "/api/v1/auth/login")}
    assert routes_of(contracts) >= expected
    check_no_clashes(contracts.bindings)


def test_a_route_clash_is_refused_naming_both_rpcs(tickets_set: Path, folder: Path) -> None:
    clash_set = build_set(folder / "clash.binpb", "clash/v1/clash.proto")
    contracts = Contracts([tickets_set, clash_set])
    with pytest.raises(ValueError, match="route clash") as refused:
        check_no_clashes(contracts.bindings)
    assert "acme.tickets.v1.TicketService.GetTicket" in str(refused.value)
    assert "clash.v1.ClashService.Show" in str(refused.value)
    # Routes that overlap without being the same are no clash: the more specific one is tried first.
    RouteTable(Contracts([tickets_set]).bindings)


def test_a_route_on_the_gateways_own_paths_is_refused(conf_set: Path) -> None:
    bindings = Contracts([conf_set], parse_access_policy("conf.v1=public")).bindings
    with pytest.raises(ValueError, match=r"GET /v1/config of conf\.v1\.ConfigService\.GetConfig is a path the gateway"):
        check_no_clashes(bindings, reserved_paths=["/health", "/v1/config"])


def test_two_sets_holding_different_versions_of_a_file_are_refused(tickets_set: Path, folder: Path) -> None:
    changed_root = folder / "changed"
    changed = changed_root / TICKETS_PROTO
    changed.parent.mkdir(parents=True)
    changed.write_text((PROTOS / TICKETS_PROTO).read_text().replace("int32 priority = 4;", "int64 priority = 4;"))
    other = build(folder / "changed.binpb", [changed_root], [TICKETS_PROTO])
    with pytest.raises(ValueError, match=r"different versions of acme/tickets/v1/tickets\.proto") as refused:
        Contracts([tickets_set, other])
    assert str(tickets_set) in str(refused.value) and str(other) in str(refused.value)


def test_a_set_without_its_imports_is_refused_saying_how_to_build_it(folder: Path) -> None:
    from grpc_tools import protoc

    from devtools.protogen import _include_paths

    bare = folder / "bare.binpb"
    args = ["protoc", f"-I{PROTOS}", *(f"-I{path}" for path in _include_paths()), f"--descriptor_set_out={bare}"]
    assert protoc.main([*args, TICKETS_PROTO]) == 0
    with pytest.raises(ValueError, match="--include_imports"):
        Contracts([bare])


def test_unreadable_and_non_descriptor_files_are_refused(folder: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        Contracts([folder / "missing.binpb"])
    junk = folder / "junk.binpb"
    junk.write_bytes(b"\xff\xfe not a descriptor set")
    with pytest.raises(ValueError, match="is not a FileDescriptorSet"):
        Contracts([junk])


def test_the_setting_takes_one_path_or_a_list(tmp_path: Path) -> None:
    default = tmp_path / "default.binpb"
    assert descriptor_set_paths("", default) == [default]
    assert descriptor_set_paths("a.binpb", default) == [Path("a.binpb")]
    assert descriptor_set_paths(f" a.binpb , b.binpb{os.pathsep}c.binpb ", default) == [
        Path("a.binpb"),
        Path("b.binpb"),
        Path("c.binpb"),
    ]


def test_the_gateway_process_refuses_to_start_naming_the_clash(tickets_set: Path, folder: Path) -> None:
    clash_set = build_set(folder / "clash2.binpb", "clash/v1/clash.proto")
    env = {
        **os.environ,
        "PYTHONPATH": python_path(),
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_DESCRIPTOR_SET": f"{tickets_set},{clash_set}",
        "GATEWAY_UPSTREAMS": "acme=127.0.0.1:1;clash=127.0.0.1:1",
    }
    started = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert "route clash" in started.stderr
    assert "acme.tickets.v1.TicketService.GetTicket" in started.stderr
    assert "clash.v1.ClashService.Show" in started.stderr


def test_the_gateway_process_refuses_a_bad_policy_naming_the_entry(tickets_set: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": python_path(),
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_DESCRIPTOR_SET": str(tickets_set),
        "GATEWAY_ACCESS_POLICY": "acme.tickets.v1=everyone",
    }
    started = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert "GATEWAY_ACCESS_POLICY: entry 'acme.tickets.v1=everyone'" in started.stderr


@pytest.mark.parametrize("url", ["ftp://keys.example/jwks.json", "jwks.json", "http:///jwks.json"])
def test_a_jwks_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_JWKS_URL"):
        JwksSource(Upstreams({}), url=url, method="/tenantry.auth.v1.AuthService/GetJwks")
