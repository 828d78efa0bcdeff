"""Export CloudTrail-derived security events as OCSF 1.8.0 (profiles `cloud` and `datetime`).

    CloudTrail `ConsoleLogin`              ->  Authentication (3002), activity Logon
    other CloudTrail API calls (AwsApiCall) ->  API Activity (6003), activity from the operation's verb
    everything else                         ->  skipped and counted (alarms, logs, metrics, deliveries,
                                                AWS service events, Insights, other sign-in steps)

The canonical event keeps what the CloudTrail record said in `attributes` (see
mappings/cloudwatch/cloudtrail.yaml); this module only renames. JSON Schema cannot check three OCSF
rules, so they are kept here by construction and checked by the tests: `type_uid = class_uid * 100 +
activity_id`, every `*_name`/`type` sibling is the caption of its `*_id`, and `metadata.profiles`
names the profiles the document uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from integrations.events._model import CanonicalEvent, format_rfc3339

OCSF_VERSION = "1.8.0"
PROFILES = ("cloud", "datetime")

API_ACTIVITY = 6003
AUTHENTICATION = 3002
CLASSES: dict[int, tuple[str, int, str]] = {  # class_uid -> (class_name, category_uid, category_name)
    API_ACTIVITY: ("API Activity", 6, "Application Activity"),
    AUTHENTICATION: ("Authentication", 3, "Identity & Access Management"),
}
ACTIVITIES: dict[int, dict[int, str]] = {  # captions of activity_id, per class (only those used)
    API_ACTIVITY: {0: "Unknown", 1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"},
    AUTHENTICATION: {0: "Unknown", 1: "Logon", 99: "Other"},
}
SEVERITIES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal",
              99: "Other"}
STATUSES = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}
USER_TYPES = {0: "Unknown", 1: "User", 2: "Admin", 3: "System", 4: "Service", 99: "Other"}
AWS_ACCOUNT = (10, "AWS Account")  # account.type_id and its caption

_SEVERITY_IDS = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_USER_TYPE_IDS = {"Root": 2, "IAMUser": 1, "AssumedRole": 1, "FederatedUser": 1, "IdentityCenterUser": 1,
                  "SAMLUser": 1, "WebIdentityUser": 1, "AWSService": 4, "AWSAccount": 99, "Unknown": 0}

# The verb an API operation starts with says what it does to its resource.
_VERBS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (2, ("Get", "List", "Describe", "Head", "Lookup", "Search", "Query", "Scan", "BatchGet", "Select", "Check")),
    (1, ("Create", "Run", "Allocate", "Register", "Import", "Copy")),
    (4, ("Delete", "Terminate", "Deregister", "Release", "Purge", "Remove", "Detach", "Disassociate", "Revoke",
         "Deactivate", "Disable", "Cancel", "Stop")),
    (3, ("Update", "Modify", "Put", "Set", "Attach", "Add", "Associate", "Enable", "Activate", "Start", "Reboot",
         "Tag", "Untag", "Change", "Replace", "Reset", "Restore", "Apply", "Assign", "Authorize", "Upload",
         "Rotate", "Reject", "Accept")),
)


def api_activity_id(operation: str | None, read_only: Any = None) -> int:
    """OCSF API Activity id of a CloudTrail operation: Read for read-only calls, else from its verb; Other."""
    if read_only is True:
        return 2
    name = operation or ""
    for activity, verbs in _VERBS:
        for verb in verbs:
            if name.startswith(verb) and (len(name) == len(verb) or not name[len(verb)].islower()):
                return activity
    return 99 if name else 0


def ocsf_class_of(event: CanonicalEvent) -> int | None:
    """The OCSF class an event becomes, or None when it has no counterpart (it is skipped)."""
    attrs = event.attributes
    if event.event_type != "security" or not attrs.get("event_name") or not attrs.get("event_source"):
        return None
    if attrs["event_name"] == "ConsoleLogin":
        return AUTHENTICATION
    if attrs.get("event_type") in (None, "AwsApiCall"):  # eventVersion 1.0 records have no eventType
        return API_ACTIVITY
    return None


def to_ocsf(event: CanonicalEvent) -> dict[str, Any] | None:
    """One OCSF document for a CloudTrail-derived security event, or None."""
    class_uid = ocsf_class_of(event)
    if class_uid is None:
        return None
    attrs = event.attributes
    identity = attrs.get("identity") or {}
    failed = bool(attrs.get("error_code")) or attrs.get("console_login") == "Failure"
    if class_uid == AUTHENTICATION:
        activity_id = 1
    else:
        activity_id = api_activity_id(attrs.get("event_name"), attrs.get("read_only"))
    class_name, category_uid, category_name = CLASSES[class_uid]
    activity_name = ACTIVITIES[class_uid][activity_id]
    severity_id = _SEVERITY_IDS[event.severity]
    status_id = 2 if failed else 1
    account_uid = attrs.get("recipient_account_id") or identity.get("account_id")
    doc: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": severity_id,
        "severity": SEVERITIES[severity_id],
        "status_id": status_id,
        "status": STATUSES[status_id],
        "status_code": attrs.get("error_code"),
        "status_detail": attrs.get("error_message"),
        "time": int(event.occurred_at.timestamp() * 1000),
        "time_dt": format_rfc3339(event.occurred_at),
        "message": event.title,
        "metadata": {
            "version": OCSF_VERSION,
            "profiles": list(PROFILES),
            "product": {"name": "CloudTrail", "vendor_name": "AWS"},
            "uid": event.event_id,
            "original_event_uid": event.integration_context.external_id,
            "tenant_uid": event.tenant_id,
            "log_name": attrs.get("log_group"),
            "log_version": attrs.get("event_version"),
            "event_code": attrs.get("event_type"),
        },
        "cloud": {
            "provider": "AWS",
            "region": attrs.get("aws_region") or attrs.get("region"),
            "account": _account(account_uid),
        },
        "src_endpoint": _endpoint(attrs.get("source_ip")),
        "http_request": {"user_agent": attrs.get("user_agent")},
    }
    user = _user(identity, account_uid)
    if class_uid == AUTHENTICATION:
        doc.update({
            "user": user,
            "service": {"name": attrs["event_source"]},
            "is_mfa": {"Yes": True, "No": False}.get(attrs.get("mfa_used")),
            "is_remote": True,
        })
    else:
        doc.update({
            "actor": {
                "user": user,
                "invoked_by": identity.get("invoked_by"),
                "session": {"issuer": identity.get("session_issuer_arn"),
                            "is_mfa": {"true": True, "false": False}.get(identity.get("mfa_authenticated"))},
            },
            "api": {
                "operation": attrs["event_name"],
                "service": {"name": attrs["event_source"]},
                "request": {"uid": attrs["request_id"]} if attrs.get("request_id") else None,
                "response": {"error": attrs.get("error_code"), "error_message": attrs.get("error_message")},
            },
            "resources": [{"uid": arn} for arn in attrs.get("resources") or [] if isinstance(arn, str) and arn],
        })
    return _compact(doc)


def export_ocsf(events: Sequence[CanonicalEvent]) -> tuple[list[dict[str, Any]], int]:
    """The `ocsf` export format: documents for the events that have a counterpart, and how many had none."""
    documents = [doc for doc in (to_ocsf(event) for event in events) if doc is not None]
    return documents, len(events) - len(documents)


def _account(uid: Any) -> dict[str, Any] | None:
    if not uid:
        return None
    return {"uid": str(uid), "type_id": AWS_ACCOUNT[0], "type": AWS_ACCOUNT[1]}


def _user(identity: dict[str, Any], account_uid: Any) -> dict[str, Any]:
    type_id = _USER_TYPE_IDS.get(identity.get("type") or "Unknown", 99)
    user = {
        "uid": identity.get("arn"),
        "uid_alt": identity.get("principal_id"),
        "name": identity.get("user_name") or ("root" if identity.get("type") == "Root" else None),
        "type_id": type_id,
        "type": USER_TYPES[type_id] if type_id != 99 else identity.get("type"),
        "credential_uid": identity.get("access_key_id"),
        "account": _account(identity.get("account_id") or account_uid),
    }
    if not any(user.get(key) for key in ("uid", "name", "account")):
        user["name"] = identity.get("invoked_by") or "unknown"  # OCSF needs one of uid, name or account
    return user


def _endpoint(source: Any) -> dict[str, Any]:
    """CloudTrail's sourceIPAddress is an IP, or a service's host name (`signin.amazonaws.com`), or 'AWS Internal'."""
    if not source:
        return {"name": "unknown"}
    text = str(source)
    try:
        return {"ip": str(ipaddress.ip_address(text))}
    except ValueError:
        return {"domain": text} if "." in text and " " not in text else {"name": text}


def _compact(value: Any) -> Any:
    """Drop nulls and the objects and lists they leave empty (OCSF objects forbid unknown or null members)."""
    if isinstance(value, dict):
        out = {k: c for k, v in value.items() if (c := _compact(v)) is not None and c != {} and c != []}
        return out
    if isinstance(value, list):
        return [c for v in value if (c := _compact(v)) is not None]
    return value
