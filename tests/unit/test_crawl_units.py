from __future__ import annotations

import datetime as dt

import pytest

from speechmill.backends.ytdlp import FetchError, classify, media_id_for
from speechmill.cli import safe_text
from speechmill.net import BlockedHostError
from speechmill.schemas import Category
from speechmill.transforms.core.policy import Policy, decide, parse_day


@pytest.mark.parametrize(
    ("message", "category", "retryable"),
    [
        (
            "ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found",
            "not_found",
            False,
        ),
        ("HTTP Error 410: Gone", "not_found", False),
        ("HTTP Error 403: Forbidden", "unavailable", False),
        (
            "ERROR: [youtube] abc: Private video. Sign in if you've been granted access",
            "unavailable",
            False,
        ),
        ("This video has been removed by the uploader", "unavailable", False),
        ("Unsupported URL: https://example.com/x", "unsupported", False),
        ("Did not get any data blocks", "empty", False),
        ("HTTP Error 503: Service Unavailable", "network", True),
        ("HTTP Error 429: Too Many Requests", "network", True),
        ("Connection refused", "network", True),
        ("The read operation timed out", "timeout", True),
        ("something nobody anticipated", "network", True),
    ],
)
def test_failures_are_classified(message: str, category: str, retryable: bool) -> None:
    fe = classify(RuntimeError(message))
    assert (fe.category.value, fe.retryable) == (category, retryable)
    assert fe.reason and "\n" not in fe.reason


def test_blocked_hosts_are_permanent_even_when_wrapped() -> None:
    try:
        try:
            raise BlockedHostError("blocked 169.254.169.254", host="x", address="169.254.169.254")
        except BlockedHostError as inner:
            raise RuntimeError("TransportError") from inner
    except RuntimeError as e:
        fe = classify(e)
    assert isinstance(fe, FetchError)
    assert fe.category == Category.BLOCKED_HOST and not fe.retryable


def test_media_ids() -> None:
    a = media_id_for({"extractor_key": "Generic", "id": "talk", "url": "http://h/talk.mp3"})
    b = media_id_for({"extractor_key": "Generic", "id": "talk", "url": "http://h/talk.wav"})
    assert a != b and a.startswith("url:")
    assert media_id_for({"ie_key": "Youtube", "id": "abc", "url": "u"}) == "youtube:abc"
    assert media_id_for(
        {"extractor_key": "HTML5MediaEmbed", "id": "page-1", "url": "http://a/x.mp3"}
    ) != media_id_for({"extractor_key": "HTML5MediaEmbed", "id": "page-1", "url": "http://b/x.mp3"})


def test_policy_decisions() -> None:
    p = Policy(
        max_items=2,
        allow=["cc-by"],
        min_duration_s=10,
        max_duration_s=100,
        date_after=dt.date(2026, 1, 1),
        language="en",
    )
    ok = dict(
        position=0,
        license_id="cc-by-4.0",
        duration_s=50.0,
        upload_date=dt.date(2026, 6, 1),
        language="en-US",
    )
    assert decide(p, **ok).ok
    assert decide(p, **{**ok, "position": 2}).category == Category.POLICY_CAP
    assert decide(p, **{**ok, "license_id": "unknown"}).category == Category.POLICY_LICENSE
    assert decide(p, **{**ok, "license_id": "cc-by-nc-4.0"}).category == Category.POLICY_LICENSE
    assert decide(p, **{**ok, "duration_s": 5.0}).category == Category.POLICY_DURATION
    assert decide(p, **{**ok, "duration_s": None}).ok  # unknown durations pass
    assert decide(p, **{**ok, "upload_date": dt.date(2025, 1, 1)}).category == Category.POLICY_DATE
    assert decide(p, **{**ok, "language": "de"}).category == Category.POLICY_LANGUAGE
    assert decide(Policy(), **{**ok, "license_id": "unknown"}).ok  # no policy: anything goes
    assert parse_day("20260102") == parse_day("2026-01-02") == dt.date(2026, 1, 2)
    assert parse_day("garbage") is None


def test_remote_text_is_escaped_for_terminals() -> None:
    shown = safe_text("evil\u202eelif \x1b[31mred\x1b[0m\nnext", limit=200)
    assert "\u202e" not in shown and "\x1b" not in shown and "\n" not in shown
    assert "\\u202e" in shown
