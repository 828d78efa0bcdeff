"""What the GitHub client reports of the rate-limit headers, whatever they hold."""

from __future__ import annotations

import pytest

from integrations.plugins.github._client import RateLimitState


def test_reset_is_reported_as_a_utc_time():
    state = RateLimitState()
    state.observe({"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999", "x-ratelimit-reset": "1700000000",
                   "x-ratelimit-used": "1", "x-ratelimit-resource": "core"})
    report = state.as_dict()
    assert report["reset_at"] == "2023-11-14T22:13:20+00:00" and report["remaining"] == 4999


@pytest.mark.parametrize("reset", ["67768036191676796929", "-99999999999999", "soon"])
def test_a_reset_no_date_can_hold_is_reported_without_a_date(reset):
    state = RateLimitState()
    state.observe({"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    report = state.as_dict()
    assert report["reset_at"] is None and report["remaining"] == 0
