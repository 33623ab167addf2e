"""Signed checkpoints outside the database: a cut tail is found, the log only grows, the key survives restarts."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format

from tests.audit.tampering import (
    append,
    as_superuser_behind_the_triggers,
    chain_length,
    checkpoint_lines,
    checkpoint_log,
    cut_the_newest_events,
    event,
    verify,
)
from tests.stack import Stack, Tenant, eventually


def writer_refused(stack: Stack, scope: str, problem: str) -> bool:
    """The audit service logged that its checkpoint writer refused to sign the scope's chain."""
    for line in (stack.log_dir / "audit.log").read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("scope") == scope and problem in entry.get("message", ""):
                return True
    return False


def test_an_intact_verification_returns_a_checkpoint_that_checks_out_offline(stack: Stack, tenant: Tenant) -> None:
    result = verify(stack, tenant.owner_token)
    checkpoint, key = result.latest_checkpoint, result.checkpoint_key
    assert result.intact and checkpoint.sequence == result.events_checked == chain_length(stack, tenant.id)
    assert key.algorithm == "Ed25519" and key.key_id == hashlib.sha256(key.public_key).hexdigest()[:16]
    assert checkpoint.key_id == key.key_id and checkpoint.scope == tenant.id
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(checkpoint.signature, checkpoint.signed_payload)
    newest_hash = stack.sql(
        "SELECT chain_hash FROM audit.events WHERE tenant_id = %s AND sequence = %s", (tenant.id, checkpoint.sequence)
    )[0][0]
    assert checkpoint.head_hash == bytes(newest_hash).hex()
    header, scope, sequence, head_hash, created_at = checkpoint.signed_payload.decode().split("\n")
    assert (header, scope, int(sequence), head_hash) == (
        "tenantry-audit-checkpoint/v1",
        tenant.id,
        checkpoint.sequence,
        checkpoint.head_hash,
    )
    assert created_at == checkpoint.created_at.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_json_client_can_check_the_checkpoint_it_was_given(stack: Stack, tenant: Tenant) -> None:
    # What the REST gateway sends: the proto3 JSON mapping, bytes in base64, int64 as strings.
    document = json_format.MessageToDict(verify(stack, tenant.owner_token), preserving_proto_field_name=True)
    checkpoint, key = document["latest_checkpoint"], document["checkpoint_key"]
    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
    payload = base64.b64decode(checkpoint["signed_payload"])
    public_key.verify(base64.b64decode(checkpoint["signature"]), payload)
    assert payload.decode().split("\n")[2] == checkpoint["sequence"] == document["events_checked"]
    tampered = payload.replace(checkpoint["head_hash"].encode(), hashlib.sha256(b"other").hexdigest().encode())
    with pytest.raises(InvalidSignature):
        public_key.verify(base64.b64decode(checkpoint["signature"]), tampered)


def test_cutting_the_newest_events_and_rewinding_the_head_is_found(stack: Stack, tenant: Tenant) -> None:
    signed = verify(stack, tenant.owner_token).latest_checkpoint.sequence
    remaining = cut_the_newest_events(stack, tenant.id, 2)
    result = verify(stack, tenant.owner_token)
    assert not result.intact
    assert result.problem.startswith(f"the chain ends at {remaining} but the checkpoint signed at ")
    assert result.problem.endswith(f"covers sequence {signed}")
    assert result.first_broken_sequence == remaining + 1 and result.latest_checkpoint.sequence == signed
    # The checkpoint writer notices too, and signs nothing for the shorter chain.
    assert eventually(lambda: writer_refused(stack, tenant.id, "is behind its last signed checkpoint"), timeout=15)
    assert [line["sequence"] for line in checkpoint_lines(stack, tenant.id)][-1] == signed


def test_a_head_rewound_over_events_left_in_place_is_found(stack: Stack, tenant: Tenant) -> None:
    signed = verify(stack, tenant.owner_token).latest_checkpoint.sequence
    as_superuser_behind_the_triggers(
        stack,
        "UPDATE audit.chain_heads SET sequence = sequence - 1,"
        " chain_hash = (SELECT chain_hash FROM audit.events WHERE tenant_id = %s AND sequence = %s) WHERE scope = %s",
        (tenant.id, signed - 1, tenant.id),
    )
    result = verify(stack, tenant.owner_token)
    assert not result.intact and result.problem.endswith(f"covers sequence {signed}")


def test_a_chain_regrown_over_a_cut_does_not_match_its_checkpoint(stack: Stack, tenant: Tenant) -> None:
    signed = verify(stack, tenant.owner_token).latest_checkpoint.sequence
    remaining = cut_the_newest_events(stack, tenant.id, 2)
    append(stack, *(event(tenant.id) for _ in range(4)))
    result = verify(stack, tenant.owner_token)
    # At the first checkpoint past the cut: the last one, or one the writer
    # signed while the tenant's events were arriving.
    assert not result.intact and remaining < result.first_broken_sequence <= signed
    assert result.problem.startswith("hash differs from the checkpoint signed at")
    # The checkpoint writer does not sign the regrown chain either.
    assert eventually(
        lambda: writer_refused(stack, tenant.id, "does not extend its last signed checkpoint"), timeout=15
    )
    assert [line["sequence"] for line in checkpoint_lines(stack, tenant.id)][-1] == signed


def test_the_checkpoint_writer_signs_grown_chains_by_appending_to_their_log(stack: Stack, tenant: Tenant) -> None:
    first = verify(stack, tenant.owner_token).latest_checkpoint.sequence
    # The writer may have signed the chain on its way here too: any number of lines.
    before = checkpoint_log(stack, tenant.id).read_bytes()
    append(stack, *(event(tenant.id) for _ in range(3)))
    # No verification asked for: the periodic writer signs the grown chain.
    grown = eventually(lambda: checkpoint_lines(stack, tenant.id)[-1]["sequence"] == first + 3, timeout=15)
    assert grown
    after = checkpoint_log(stack, tenant.id).read_bytes()
    assert after.startswith(before) and len(after.splitlines()) == len(before.splitlines()) + 1
    # Nothing new to sign, nothing written.
    assert verify(stack, tenant.owner_token).latest_checkpoint.sequence == first + 3
    assert checkpoint_log(stack, tenant.id).read_bytes() == after


def _raise_the_sequence(line: dict[str, object]) -> str:
    line["sequence"] = int(str(line["sequence"])) + 5
    return json.dumps(line)


def _flip_a_signature_bit(line: dict[str, object]) -> str:
    signature = bytearray(base64.b64decode(str(line["signature"])))
    signature[0] ^= 1
    return json.dumps({**line, "signature": base64.b64encode(bytes(signature)).decode()})


def _forge_the_head_hash(line: dict[str, object]) -> str:
    return json.dumps({**line, "head_hash": hashlib.sha256(b"forged").hexdigest()})


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_raise_the_sequence, "checkpoint log line 1 does not carry a valid signature"),
        (_flip_a_signature_bit, "checkpoint log line 1 does not carry a valid signature"),
        (_forge_the_head_hash, "checkpoint log line 1 does not carry a valid signature"),
        (lambda line: "not json", "checkpoint log line 1 is unreadable (JSONDecodeError)"),
    ],
    ids=["sequence-changed", "signature-broken", "head-hash-forged", "garbage"],
)
def test_a_damaged_checkpoint_line_is_found(
    stack: Stack, tenant: Tenant, damage: Callable[[dict[str, object]], str], problem: str
) -> None:
    verify(stack, tenant.owner_token)
    append(stack, event(tenant.id))
    verify(stack, tenant.owner_token)
    path = checkpoint_log(stack, tenant.id)
    first, *later = path.read_text().splitlines()
    assert later, "an earlier line is damaged, not the latest"
    path.write_text("\n".join([damage(json.loads(first)), *later]) + "\n")
    result = verify(stack, tenant.owner_token)
    assert not result.intact and result.problem == problem


def test_a_lost_checkpoint_line_is_found(stack: Stack, tenant: Tenant) -> None:
    verify(stack, tenant.owner_token)
    append(stack, event(tenant.id))
    signed = verify(stack, tenant.owner_token).latest_checkpoint.sequence
    path = checkpoint_log(stack, tenant.id)
    path.write_text(path.read_text().splitlines()[0] + "\n")
    result = verify(stack, tenant.owner_token)
    assert not result.intact and result.problem == f"checkpoint log lost its checkpoint of sequence {signed}"


def test_a_restarted_audit_service_keeps_its_key_and_checkpoints(stack: Stack, tenant: Tenant) -> None:
    before = verify(stack, tenant.owner_token)
    key_file = Path(stack.audit_data_dir) / "checkpoint-signing-key.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    log_before = checkpoint_log(stack, tenant.id).read_bytes()
    with stack.service_stopped("audit"):
        pass
    after = verify(stack, tenant.owner_token)
    assert after.checkpoint_key == before.checkpoint_key
    assert after.latest_checkpoint == before.latest_checkpoint
    assert checkpoint_log(stack, tenant.id).read_bytes() == log_before
    # What the checkpoints are for still works after the restart.
    cut_the_newest_events(stack, tenant.id, 1)
    cut = verify(stack, tenant.owner_token)
    assert not cut.intact and cut.problem.endswith(f"covers sequence {before.latest_checkpoint.sequence}")
