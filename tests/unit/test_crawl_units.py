from __future__ import annotations

import datetime as dt

import pytest

from speechmill.backends.net import BlockedHostError
from speechmill.backends.ytdlp import FetchError, classify, media_id_for
from speechmill.cli import safe_text
from speechmill.core.crawl.policy import (
    Policy,
    decide,
    enclosure_drop,
    needs_full_metadata,
    parse_day,
    url_drop,
)
from speechmill.schemas import Category, Drop


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
    assert decide(p, **ok) is None
    assert decide(p, **{**ok, "position": 2}).category == Category.POLICY_CAP
    assert decide(p, **{**ok, "license_id": "unknown"}).category == Category.POLICY_LICENSE
    assert decide(p, **{**ok, "license_id": "cc-by-nc-4.0"}).category == Category.POLICY_LICENSE
    assert decide(p, **{**ok, "duration_s": 5.0}).category == Category.POLICY_DURATION
    assert decide(p, **{**ok, "duration_s": None}) is None  # unknown durations pass
    assert decide(p, **{**ok, "upload_date": dt.date(2025, 1, 1)}).category == Category.POLICY_DATE
    assert decide(p, **{**ok, "language": "de"}).category == Category.POLICY_LANGUAGE
    assert decide(Policy(), **{**ok, "license_id": "unknown"}) is None  # no policy: anything
    assert parse_day("20260102") == parse_day("2026-01-02") == dt.date(2026, 1, 2)
    assert parse_day("garbage") is None


def test_which_entries_need_full_metadata() -> None:
    flat = {"_type": "url", "url": "https://h/v"}
    licensed = Policy(allow=["cc-by"])
    assert not needs_full_metadata(flat, "never", licensed)
    assert needs_full_metadata(flat, "always", Policy())
    assert needs_full_metadata({"url": "u"}, "always", Policy())  # no formats
    assert not needs_full_metadata({"url": "u", "formats": []}, "always", Policy())
    assert needs_full_metadata(flat, "auto", licensed)  # the licence is missing
    assert not needs_full_metadata({**flat, "license": "CC BY 4.0"}, "auto", licensed)
    assert not needs_full_metadata(flat, "auto", Policy())  # nothing to decide on
    assert not needs_full_metadata({"url": "u"}, "auto", licensed)  # not flat
    assert needs_full_metadata(flat, "auto", Policy(max_duration_s=10))
    assert not needs_full_metadata({**flat, "duration": 0}, "auto", Policy(max_duration_s=10))
    assert needs_full_metadata(flat, "auto", Policy(date_after=dt.date(2026, 1, 1)))


def test_urls_that_are_not_crawled() -> None:
    for url in ("file:///etc/passwd", "DATA:text/plain,x", "javascript:alert(1)", "ftp://h/a"):
        d = url_drop(url)
        assert d is not None and d.category == Category.UNSUPPORTED and not d.retryable
        assert d.reason == "only network URLs are crawled (use kind: local)"
    assert url_drop("https://h/a") is None and url_drop("ytsearch5:talks") is None
    assert enclosure_drop("HTTPS://h/a.mp3") is None and enclosure_drop("http://h/a") is None
    d = enclosure_drop("ftp://h/a.mp3")
    assert d == Drop(Category.UNSUPPORTED, "only http(s) enclosures are fetched")


def test_remote_text_is_escaped_for_terminals() -> None:
    shown = safe_text("evil\u202eelif \x1b[31mred\x1b[0m\nnext", limit=200)
    assert "\u202e" not in shown and "\x1b" not in shown and "\n" not in shown
    assert "\\u202e" in shown


# --- remote strings are made storable where items and rejects are built (issue 10) -------

SURROGATES = "\ud800 x \udfff"


def test_ytdlp_items_from_hostile_entries_can_be_written() -> None:
    from speechmill.backends import ytdlp
    from speechmill.config import YtdlpSource
    from speechmill.schemas import TABLES
    from speechmill.transforms.discover_remote import _reject, _ytdlp_item

    entry = {
        "id": "a\ud800b",
        "ie_key": "Youtube",
        "url": "https://h/\ud800.mp3",
        "webpage_url": "https://h/p\udfff",
        "title": SURROGATES,
        "uploader": "Ann \ud800",
        "channel_id": "UC\udfff",
        "license": "CC BY 4.0 \ud800",
        "language": "en\ufdd0",
        "tags": ["t\ud800", None, 5, "\U0010ffff"],
        ytdlp.LISTED_URL: "https://h/listed\ud800",
    }
    spec = YtdlpSource(url="https://h/")
    now = dt.datetime.now(dt.timezone.utc)
    item = _ytdlp_item(entry, spec, "s", "r1", now, ["\ud800 CC BY-SA 4.0"], {})
    table = TABLES["sources"].to_table([item])  # raises on a lone surrogate
    assert table.num_rows == 1
    assert item.media_id == "youtube:a\ufffdb"
    assert item.title == "\ufffd x \ufffd" and item.author == "Ann \ufffd"
    assert item.url == "https://h/\ufffd.mp3" and item.webpage_url == "https://h/p\ufffd"
    assert item.listed_url == "https://h/listed\ufffd"
    assert item.channel_id == "UC\ufffd" and item.language == "en\ufffd"
    assert item.tags == ["t\ufffd", "5", "\ufffd"]
    assert item.license == "cc-by-sa-4.0" and "\ud800" not in (item.license_raw or "")
    rej = _reject(item, Drop(Category.NETWORK, f"yt-dlp said {SURROGATES}", SURROGATES, True))
    assert TABLES["rejects"].to_table([rej]).num_rows == 1
    assert rej.reason == "yt-dlp said \ufffd x \ufffd" and rej.detail == "\ufffd x \ufffd"


def test_generic_ids_hash_any_url() -> None:
    from speechmill.backends.ytdlp import url_id

    assert url_id("http://h/\ud800") != url_id("http://h/\udfff")  # distinct, never raises
    assert media_id_for({"extractor_key": "Generic", "url": "http://h/\ud800"}).startswith("url:")


def test_list_files_with_bytes_that_are_not_utf8(tmp_path) -> None:
    from speechmill.config import ListSource
    from speechmill.transforms.discover_remote import _urls_of

    path = tmp_path / "urls.txt"
    path.write_bytes(b"# comment\nhttp://h/caf\xe9.mp3\n\nhttp://h/ok \xc3\xa9.mp3\n")
    assert _urls_of(ListSource(path=str(path))) == ["http://h/caf%E9.mp3", "http://h/ok \u00e9.mp3"]


def test_blank_failure_messages_get_a_reason() -> None:
    assert classify(TimeoutError()).reason == "fetch failed"
    assert classify(RuntimeError("  \n  ")).reason == "fetch failed"


def test_response_headers_are_case_insensitive() -> None:
    import pickle

    from speechmill.backends.http import Headers

    h = Headers([("Content-type", "text/html"), ("etag", '"1"'), ("ETag", '"2"')])
    assert h["content-type"] == h["CONTENT-TYPE"] == h.get("Content-Type") == "text/html"
    assert h["ETag"] == '"1"'  # a repeated field keeps its first value
    assert "Etag" in h and "Last-Modified" not in h and 5 not in h
    assert list(h) == ["Content-type", "etag"] and len(h) == 2
    assert dict(pickle.loads(pickle.dumps(h))) == dict(h)
    assert dict(Headers({"A": "1"})) == {"A": "1"}
