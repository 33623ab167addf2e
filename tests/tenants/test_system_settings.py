"""System settings: public ones to anyone, all to operators, managed by operators only, every change audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
import requests
from google.protobuf import field_mask_pb2, json_format, struct_pb2
from tenantry.tenants.v1 import system_settings_service_pb2 as messages
from tenantry.tenants.v1 import system_settings_service_pb2_grpc

from tests.gateway.conftest import gateway_in_front
from tests.stack import Stack, bearer, eventually, rpc_error

URL = "/api/v1/system/settings"


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[str]:
    with gateway_in_front(stack, "gateway-settings") as url:
        yield url


def stub(stack: Stack) -> system_settings_service_pb2_grpc.SystemSettingsServiceStub:
    return system_settings_service_pb2_grpc.SystemSettingsServiceStub(stack.channels["tenants"])


def new_key() -> str:
    return f"documents.limit_{uuid.uuid4().hex[:8]}"


def value(document: object) -> struct_pb2.Value:
    message = struct_pb2.Value()
    json_format.ParseDict(document, message)
    return message


def operator(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.operator_token()}"}


def test_public_settings_are_served_to_anyone_and_all_of_them_to_operators(stack: Stack, gateway: str) -> None:
    public, private = new_key(), new_key()
    headers = operator(stack)
    made = requests.post(
        f"{gateway}{URL}",
        headers=headers,
        json={"key": public, "value": {"max_mb": 25, "types": ["pdf"]}, "description": "Uploads", "is_public": True},
        timeout=10,
    )
    assert made.status_code == 200, made.text
    assert made.json()["value"] == {"max_mb": 25, "types": ["pdf"]}
    assert requests.post(f"{gateway}{URL}", headers=headers, json={"key": private, "value": "internal"}).ok

    anyone = requests.get(f"{gateway}{URL}", timeout=10)
    assert anyone.status_code == 200
    keys = {setting["key"]: setting for setting in anyone.json()["settings"]}
    assert public in keys and private not in keys
    assert keys[public]["updated_by"] == ""
    assert requests.get(f"{gateway}{URL}/{public}", timeout=10).json()["value"]["max_mb"] == 25
    assert requests.get(f"{gateway}{URL}/{private}", timeout=10).status_code == 404

    everything = requests.get(f"{gateway}{URL}", headers=headers, timeout=10).json()["settings"]
    assert {public, private} <= {setting["key"] for setting in everything}
    assert requests.get(f"{gateway}{URL}/{private}", headers=headers, timeout=10).json()["value"] == "internal"

    # A forged or broken token is refused, never treated as no token.
    assert requests.get(f"{gateway}{URL}", headers={"Authorization": "Bearer nonsense"}, timeout=10).status_code == 401


def test_only_operators_manage_settings(stack: Stack, gateway: str) -> None:
    tenant = stack.create_tenant("settings")
    key = new_key()
    owner = {"Authorization": f"Bearer {tenant.owner_token}"}
    refused = requests.post(f"{gateway}{URL}", headers=owner, json={"key": key, "value": 1}, timeout=10)
    assert refused.status_code == 403
    assert requests.post(f"{gateway}{URL}", json={"key": key, "value": 1}, timeout=10).status_code == 401
    # A tenant's owner reads as anyone does: the public rows only.
    requests.post(f"{gateway}{URL}", headers=operator(stack), json={"key": key, "value": 1}, timeout=10)
    assert requests.get(f"{gateway}{URL}/{key}", headers=owner, timeout=10).status_code == 404
    error = rpc_error(
        lambda: stub(stack).DeleteSystemSetting(
            messages.DeleteSystemSettingRequest(key=key), metadata=bearer(tenant.owner_token), timeout=10
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_changes_over_grpc_are_audited_in_the_platforms_trail(stack: Stack) -> None:
    token = stack.operator_token()
    settings = stub(stack)
    key = new_key()
    created = settings.CreateSystemSetting(
        messages.CreateSystemSettingRequest(setting=messages.SystemSetting(key=key, value=value(None))),
        metadata=bearer(token),
        timeout=10,
    )
    assert created.value.WhichOneof("kind") == "null_value" and not created.is_public
    updated = settings.UpdateSystemSetting(
        messages.UpdateSystemSettingRequest(
            key=key,
            setting=messages.SystemSetting(is_public=True, description="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["is_public"]),
        ),
        metadata=bearer(token),
        timeout=10,
    )
    assert updated.is_public and updated.description == "" and updated.updated_by
    assert settings.GetSystemSetting(messages.GetSystemSettingRequest(key=key), timeout=10).is_public
    settings.DeleteSystemSetting(messages.DeleteSystemSettingRequest(key=key), metadata=bearer(token), timeout=10)
    missing = rpc_error(lambda: settings.GetSystemSetting(messages.GetSystemSettingRequest(key=key), timeout=10))
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    def audited() -> list[str]:
        events = stack.audit_events(token, resource_type="system_setting")
        return [event.action for event in events if event.resource_id == key]

    eventually(lambda: len(audited()) == 3, timeout=30)
    assert sorted(audited()) == ["system_setting.created", "system_setting.deleted", "system_setting.updated"]


def test_bad_keys_values_and_fields_are_refused_naming_the_field(stack: Stack, gateway: str) -> None:
    headers = operator(stack)
    cases = [
        ({"key": "Upper.Case", "value": 1}, "setting.key"),
        ({"key": "a..b", "value": 1}, "setting.key"),
        ({"key": "x" * 101, "value": 1}, "setting.key"),
        ({"key": "", "value": 1}, "setting.key"),
        ({"key": new_key()}, "setting.value"),
        ({"key": new_key(), "value": "v" * 70_000}, "setting.value"),
        ({"key": new_key(), "value": 1, "description": "d" * 1001}, "setting.description"),
    ]
    for body, field in cases:
        reply = requests.post(f"{gateway}{URL}", headers=headers, json=body, timeout=10)
        assert reply.status_code == 400 and field in reply.text, (body, reply.text)
    broken = requests.post(
        f"{gateway}{URL}",
        headers={**headers, "Content-Type": "application/json"},
        data=b'{"key": "a", "value": ',
        timeout=10,
    )
    assert broken.status_code == 400
    key = new_key()
    assert requests.post(f"{gateway}{URL}", headers=headers, json={"key": key, "value": 1}, timeout=10).ok
    again = requests.post(f"{gateway}{URL}", headers=headers, json={"key": key, "value": 2}, timeout=10)
    assert again.status_code == 409
    wrong_mask = requests.patch(
        f"{gateway}{URL}/{key}", headers=headers, params={"update_mask": "key"}, json={"value": 3}, timeout=10
    )
    assert wrong_mask.status_code == 400 and "update_mask" in wrong_mask.text
    absent = requests.patch(f"{gateway}{URL}/{new_key()}", headers=headers, json={"value": 3}, timeout=10)
    assert absent.status_code == 404
    assert requests.get(f"{gateway}{URL}/Not%20A%20Key", timeout=10).status_code == 400


def test_bad_input_over_grpc_is_invalid_argument_naming_the_field(stack: Stack) -> None:
    token = bearer(stack.operator_token())
    settings = stub(stack)
    cases = [
        (
            lambda: settings.CreateSystemSetting(
                messages.CreateSystemSettingRequest(setting=messages.SystemSetting(key=new_key())), metadata=token
            ),
            "setting.value",
        ),
        (
            lambda: settings.CreateSystemSetting(
                messages.CreateSystemSettingRequest(setting=messages.SystemSetting(key="9lives", value=value(1))),
                metadata=token,
            ),
            "setting.key",
        ),
        (
            lambda: settings.UpdateSystemSetting(
                messages.UpdateSystemSettingRequest(
                    key=new_key(), setting=messages.SystemSetting(key=new_key(), value=value(1))
                ),
                metadata=token,
            ),
            "setting.key",
        ),
        (
            lambda: settings.UpdateSystemSetting(
                messages.UpdateSystemSettingRequest(
                    key=new_key(),
                    setting=messages.SystemSetting(value=value(1)),
                    update_mask=field_mask_pb2.FieldMask(paths=["updated_by"]),
                ),
                metadata=token,
            ),
            "update_mask",
        ),
        (lambda: settings.GetSystemSetting(messages.GetSystemSettingRequest(key="a b")), "key"),
    ]
    for call, field in cases:
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, error.details())
        assert (error.details() or "").startswith(field), (field, error.details())
