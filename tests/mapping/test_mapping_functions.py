"""The custom JMESPath functions, each with its null rule."""

from __future__ import annotations

import base64
import gzip
import json

import jmespath
import pytest

from integrations.errors import RecordError
from integrations.mapping.functions import CUSTOM_FUNCTION_NAMES, OPTIONS


def ev(expression: str, data=None):
    return jmespath.search(expression, data or {}, options=OPTIONS)


@pytest.mark.parametrize("expression,data,expected", [
    ("from_epoch(`1700000000`)", {}, "2023-11-14T22:13:20Z"),
    ("from_epoch(`1700000000.5`)", {}, "2023-11-14T22:13:20.500Z"),
    ("from_epoch_ms(`1700000000123`)", {}, "2023-11-14T22:13:20.123Z"),
    ("from_epoch(x)", {}, None),
    ("lower('AbC')", {}, "abc"),
    ("upper(x)", {}, None),
    ("split('a/b/c', '/')", {}, ["a", "b", "c"]),
    ("replace('a-b-c', '-', '_')", {}, "a_b_c"),
    ("concat('a', `1`, x, 'b')", {}, "a1b"),
    ("format('{} on {}', a, b)", {"a": "deploy", "b": 3}, "deploy on 3"),
    ("default(x, 'none')", {}, "none"),
    ("default(x, 'none')", {"x": False}, False),
    ("coalesce(x, y, 'z')", {"y": 0}, 0),
    ("from_json(s).a", {"s": '{"a": [1]}'}, [1]),
    ("from_json(s)", {}, None),
    ("zip(t, v)", {"t": ["t0", "t1"], "v": [1.5, 2]}, [["t0", 1.5], ["t1", 2]]),
    ("regex_extract('/aws/lambda/checkout-api', '^/aws/lambda/(.+)$')", {}, "checkout-api"),
    ("regex_extract('abc', 'x')", {}, None),
])
def test_functions(expression, data, expected):
    assert ev(expression, data) == expected


def test_gunzip_base64_decodes_a_log_subscription_payload():
    payload = {"logGroup": "/aws/lambda/x", "logEvents": [{"id": "1", "timestamp": 1, "message": "hi"}]}
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    assert ev("from_json(gunzip_base64(awslogs.data)).logGroup", {"awslogs": {"data": data}}) == "/aws/lambda/x"


@pytest.mark.parametrize("expression,data,message", [
    ("from_json(s)", {"s": "{nope"}, "not valid JSON"),
    ("gunzip_base64('!!!')", {}, "cannot decode"),
    ("format('{} {}', a)", {"a": 1}, "2 placeholders but 1 values"),
    ("regex_extract('a', '(')", {}, "bad pattern"),
    # Out of datetime's range: OSError (EOVERFLOW) or OverflowError from the C library, found by
    # the differential test with an id of 67768036191676796929 read as epoch milliseconds.
    ("from_epoch_ms(n)", {"n": 67768036191676796929}, r"from_epoch_ms\(\): 67768036191676796929 is not a time"),
    ("from_epoch_ms(n)", {"n": 10**400}, "from_epoch_ms"),
    ("from_epoch(n)", {"n": -10**12}, r"from_epoch\(\): .* years 1 and 9999"),
    ("from_epoch(n)", {"n": 1e300}, "from_epoch"),
])
def test_function_errors_are_record_errors(expression, data, message):
    with pytest.raises(RecordError, match=message):
        ev(expression, data)


def test_wrong_argument_type_is_a_jmespath_type_error():
    with pytest.raises(jmespath.exceptions.JMESPathTypeError):
        ev("lower(`5`)")


def test_every_custom_function_is_documented_in_the_readme_and_the_format_doc():
    from tests.conftest import ROOT

    for doc in ("README.md", "docs/mapping-format.md"):
        text = (ROOT / doc).read_text()
        missing = [name for name in CUSTOM_FUNCTION_NAMES if f"`{name}(" not in text]
        assert not missing, f"{doc} does not document {missing}"
