"""The audit writer's own parameters never clash with a model's field names: they are
positional-only, so `create(actor, Device, model=...)` sets the field `model`."""
import inspect
import json

import pytest

from leakhub.audit import writer
from leakhub.audit.models import AuditEntry
from leakhub.authz import Actor
from leakhub.devices.models import Device
from leakhub.leaks import service as leaks
from leakhub.locations import service as locations
from leakhub.orgs.models import Organization
from leakhub.surveys import service as surveys


@pytest.fixture
def actor(app):
    org = Organization.create(slug="acme", name="ACME", oidc_client_secret="x")
    return Actor.system(org, label="test")


def test_a_field_called_model_is_a_field_not_the_writers_model(actor):
    device = writer.create(actor, Device, name="LD500", client_id="device-ld500",
                           model="CS Instruments LD 500", serial="S-1")
    stored = Device.get_by_id(device.id)
    assert stored.model == "CS Instruments LD 500" and stored.serial == "S-1"
    entry = AuditEntry.select().where(AuditEntry.entity_type == "device").get()
    assert json.loads(entry.changes)["model"] == [None, "CS Instruments LD 500"]
    writer.update(actor, stored, {"model": "LD 510"}, action="device.updated",
                  permission="manage")
    assert Device.get_by_id(device.id).model == "LD 510"


@pytest.mark.parametrize("func", [writer.create, writer.update, writer.update_many,
                                  writer.delete, writer.event, writer.append, writer.begin,
                                  leaks.create_leak, leaks.update_leak, surveys.create_survey,
                                  surveys.update_survey, locations.create_settings])
def test_writer_and_service_parameters_are_positional_only(func):
    params = inspect.signature(func).parameters.values()
    kinds = {p.name: p.kind for p in params}
    named = [n for n, k in kinds.items()
             if k in (inspect.Parameter.POSITIONAL_OR_KEYWORD,)]
    assert not named, f"{func.__qualname__}: {named} could clash with a model field"
    positional = [n for n, k in kinds.items() if k == inspect.Parameter.POSITIONAL_ONLY]
    assert positional and positional[0] == "actor"
