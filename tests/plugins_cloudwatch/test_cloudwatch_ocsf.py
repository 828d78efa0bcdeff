"""`--format ocsf`: CloudTrail-derived security events as OCSF 1.8.0 API Activity / Authentication.

Every document is validated offline against the class schema in tests/data/specs/ocsf/1.8.0/
(profiles cloud + datetime), and the rules JSON Schema cannot check are checked here
(tests/data/specs/README.md): type_uid = class_uid * 100 + activity_id, the `*_name` siblings
(and `type` beside `type_id`) are the captions of their ids, and metadata names the profiles.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from integrations.events import EXPORT_FORMATS, CanonicalEvent, export_events
from integrations.events._ocsf import ACTIVITIES, CLASSES, SEVERITIES, STATUSES, USER_TYPES, api_activity_id, to_ocsf
from integrations.mapping import PythonEngine, load_mapping
from tests.conftest import ROOT, SPECS
from tests.plugins_cloudwatch.helpers import cloudtrail_record, json_message

OCSF = SPECS / "ocsf" / "1.8.0"
SCHEMAS = {6003: "api_activity.json", 3002: "authentication.json"}
MAPPINGS = ROOT / "mappings" / "cloudwatch"


@cache
def validator(class_uid: int) -> Draft202012Validator:
    return Draft202012Validator(json.loads((OCSF / SCHEMAS[class_uid]).read_text()))


def check_ocsf(doc: dict) -> None:
    """Valid against its class schema, and the OCSF rules the schema cannot express."""
    errors = sorted(e.message for e in validator(doc["class_uid"]).iter_errors(doc))
    assert not errors, errors
    assert doc["type_uid"] == doc["class_uid"] * 100 + doc["activity_id"]
    class_name, category_uid, category_name = CLASSES[doc["class_uid"]]
    assert (doc["class_name"], doc["category_uid"], doc["category_name"]) == (class_name, category_uid, category_name)
    assert doc["activity_name"] == ACTIVITIES[doc["class_uid"]][doc["activity_id"]]
    assert doc["type_name"] == f"{class_name}: {doc['activity_name']}"
    assert doc["severity"] == SEVERITIES[doc["severity_id"]]
    assert doc["status"] == STATUSES[doc["status_id"]]
    user = doc["user"] if doc["class_uid"] == 3002 else doc["actor"]["user"]
    if user.get("type_id") not in (None, 99):
        assert user["type"] == USER_TYPES[user["type_id"]]
    for account in (user.get("account"), doc["cloud"].get("account")):
        if account:
            assert (account["type_id"], account["type"]) == (10, "AWS Account")
    assert doc["metadata"]["version"] == "1.8.0" and doc["metadata"]["profiles"] == ["cloud", "datetime"]
    assert doc["cloud"]["provider"] == "AWS"


def security_events() -> list[CanonicalEvent]:
    """Every CloudTrail-derived event of the samples and the goldens."""
    mapping = load_mapping(MAPPINGS / "cloudtrail.yaml")
    records = []
    for path in sorted((ROOT / "data" / "samples").glob("*/cloudwatch/cloudtrail.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records += [json.loads(p.read_text()) for p in sorted((MAPPINGS / "examples" / "cloudtrail").glob("*.input.json"))]
    return PythonEngine().map(mapping, records, tenant_id="demo").events


EVENTS = security_events()


def test_every_cloudtrail_event_of_the_samples_and_goldens_exports_as_valid_ocsf():
    documents, skipped = export_events("ocsf", EVENTS)
    assert skipped == 0 and len(documents) == len(EVENTS) > 60
    classes = {}
    for event, doc in zip(EVENTS, documents):
        check_ocsf(doc)
        classes.setdefault(doc["class_uid"], set()).add(event.attributes["event_name"])
        assert doc["metadata"]["original_event_uid"] == event.integration_context.external_id
        assert doc["time"] == int(event.occurred_at.timestamp() * 1000)
    assert classes[3002] == {"ConsoleLogin"}
    assert "ConsoleLogin" not in classes[6003] and len(classes[6003]) > 10


def exported(external_id: str) -> dict:
    return next(to_ocsf(e) for e in EVENTS if e.integration_context.external_id == external_id)


def test_a_failed_root_console_login_is_a_failed_logon_of_an_admin_user():
    doc = exported("a4fbbe77-91a0-4238-804a-64314184edb6")  # golden console_login_root_failure
    assert (doc["class_uid"], doc["activity_id"], doc["type_uid"]) == (3002, 1, 300201)
    assert (doc["status"], doc["status_detail"], doc["severity"]) == ("Failure", "Failed authentication", "Critical")
    assert doc["user"] == {"uid": "arn:aws:iam::111122223333:root", "uid_alt": "AIDACKCEVSQ6C2EXAMPLE", "name": "root",
                           "type_id": 2, "type": "Admin",
                           "account": {"uid": "111122223333", "type_id": 10, "type": "AWS Account"}}
    assert doc["is_mfa"] is False and doc["service"] == {"name": "signin.amazonaws.com"}
    assert doc["src_endpoint"] == {"ip": "192.0.2.0"}


def test_an_access_denied_api_call_is_a_failed_delete():
    doc = next(to_ocsf(e) for e in EVENTS if e.attributes["event_name"] == "DeleteStateMachine")
    assert (doc["class_uid"], doc["activity_name"], doc["type_uid"]) == (6003, "Delete", 600304)
    assert (doc["status"], doc["status_code"]) == ("Failure", "AccessDenied")
    assert doc["api"]["operation"] == "DeleteStateMachine" and doc["api"]["service"]["name"] == "states.amazonaws.com"
    assert doc["api"]["response"]["error"] == "AccessDenied"


def test_events_without_an_ocsf_counterpart_are_skipped_and_counted():
    others = []
    for source in ("alarm_state_change", "log_events", "metric_data", "alarm_history"):
        mapping = load_mapping(MAPPINGS / f"{source}.yaml")
        records = [json.loads(p.read_text()) for p in sorted((MAPPINGS / "examples" / source).glob("*.input.json"))]
        others += PythonEngine().map(mapping, records, tenant_id="demo").events
    service_event = next(e for e in EVENTS if e.attributes["event_name"] == "ConsoleLogin").model_copy(
        update={"attributes": {"event_name": "SwitchRole", "event_source": "signin.amazonaws.com",
                               "event_type": "AwsConsoleSignIn"}})
    documents, skipped = export_events("ocsf", [*others, service_event, EVENTS[0]])
    assert (len(documents), skipped) == (1, len(others) + 1)
    assert "ocsf" in EXPORT_FORMATS


@pytest.mark.parametrize("operation, read_only, expected", [
    ("GetObject", None, 2), ("ListUsers", False, 2), ("PutObject", True, 2), ("CreateUser", None, 1),
    ("RunInstances", None, 1), ("UpdateTrail", None, 3), ("PutBucketPolicy", None, 3), ("StartInstances", None, 3),
    ("DeleteTrail", None, 4), ("TerminateInstances", None, 4), ("StopLogging", None, 4), ("Getaway", None, 99),
    ("AssumeRole", None, 99), ("", None, 0),
])
def test_the_api_activity_comes_from_the_operations_verb(operation, read_only, expected):
    assert api_activity_id(operation, read_only) == expected


identity_types = st.sampled_from(["Root", "IAMUser", "AssumedRole", "FederatedUser", "AWSService", "AWSAccount",
                                  "IdentityCenterUser", "Unknown"])
operations = st.sampled_from(["ConsoleLogin", "CreateUser", "GetObject", "DeleteTrail", "StopLogging",
                              "PutEventSelectors", "AssumeRole", "DescribeInstances", "AttachRolePolicy"])


@settings(max_examples=150, deadline=None)
@given(identity=identity_types, operation=operations,
       error=st.sampled_from([None, "AccessDenied", "Client.UnauthorizedOperation", "ThrottlingException"]),
       ip=st.one_of(st.ip_addresses().map(str), st.sampled_from(["AWS Internal", "cloudtrail.amazonaws.com"])),
       failed_login=st.booleans(), mfa=st.sampled_from(["Yes", "No", None]))
def test_any_cloudtrail_record_exports_as_valid_ocsf(identity, operation, error, ip, failed_login, mfa):
    """Feature: integrations, Property 4: every CloudTrail security event has a valid OCSF counterpart."""
    extra: dict = {"sourceIPAddress": ip}
    if operation == "ConsoleLogin":
        extra["responseElements"] = {"ConsoleLogin": "Failure" if failed_login else "Success"}
        if mfa:
            extra["additionalEventData"] = {"MFAUsed": mfa}
    record = cloudtrail_record(operation, identity_type=identity, error_code=error, **extra)
    if identity in ("AWSService", "Unknown"):
        record["userIdentity"] = {"type": identity, "invokedBy": "ec2.amazonaws.com"}
    envelope = {"log_group": "CloudTrail/DefaultLogGroup", "region": "us-east-1", "account_id": "123456789012",
                "event": {"logStreamName": "123456789012_CloudTrail_us-east-1", "timestamp": 1714564850000,
                          "message": json_message(record), "eventId": "1" * 56}}
    (event,) = PythonEngine().map(load_mapping(MAPPINGS / "cloudtrail.yaml"), [envelope], tenant_id="acme").events
    (doc,), skipped = export_events("ocsf", [event])
    assert skipped == 0
    check_ocsf(doc)
    assert doc["class_uid"] == (3002 if operation == "ConsoleLogin" else 6003)
    assert doc["status"] == ("Failure" if error or (operation == "ConsoleLogin" and failed_login) else "Success")


def test_integrations_map_writes_ocsf(cli):
    path = MAPPINGS / "examples" / "cloudtrail" / "console_login_failure_iam_user.input.json"
    result = cli("map", "--plugin", "cloudwatch", "--source", "cloudtrail", "--input", str(path), "--format", "ocsf")
    assert result.code == 0, result
    (doc,) = result.json_lines()
    check_ocsf(doc)
    assert (doc["class_name"], doc["status"]) == ("Authentication", "Failure")


def test_the_ocsf_spec_files_are_the_ones_the_readme_describes():
    for class_uid, name in SCHEMAS.items():
        schema = json.loads(Path(OCSF / name).read_text())
        assert schema["$id"].endswith("?profiles=cloud,datetime")
        assert schema["properties"]["class_uid"]["const"] == class_uid
