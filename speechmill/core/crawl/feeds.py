"""Podcast / RSS / Atom feeds -> plain records, parsed without trusting the document.

The XML goes through ``defusedxml``: entity declarations (so "billion laughs" and
quadratic-blowup expansion) and external entities / references are refused, as is anything
over ``max_bytes``. A plain ``<!DOCTYPE rss PUBLIC ... "...rss-0.91.dtd">`` without an
internal entity subset is accepted (old RSS 0.91 feeds carry one); nothing is ever fetched.
Every refusal or parse failure is a :class:`FeedError`.

Text comes back verbatim as data: only surrounding XML whitespace (space, tab, CR, LF) is
stripped, so titles with ``../``, shell syntax, control or bidi characters are kept as they
are. Callers store them; they must never use them as paths or in commands.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import defusedxml
import defusedxml.ElementTree as DefusedET

if TYPE_CHECKING:
    # Only the type; parsing always goes through defusedxml.
    from xml.etree.ElementTree import Element

DEFAULT_MAX_BYTES = 20_000_000


class FeedError(ValueError):
    """The bytes are not a feed we accept: too big, malformed, or using refused XML features."""


@dataclass(frozen=True)
class FeedEntry:
    guid: str | None  # RSS guid / Atom id (verbatim)
    title: str | None
    link: str | None  # the item's web page (verbatim, not resolved)
    enclosure_url: str | None  # absolute: resolved against the feed URL
    enclosure_type: str | None  # MIME type as written
    enclosure_length: int | None  # bytes; None if missing/invalid/negative
    published: datetime.date | None  # the calendar date in the feed's own UTC offset
    duration_s: float | None
    author: str | None
    language: str | None  # the entry's own; fall back to Feed.language yourself
    license_marks: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Feed:
    title: str | None
    link: str | None
    author: str | None
    language: str | None
    license_marks: tuple[str, ...]
    entries: tuple[FeedEntry, ...]


# ---------------------------------------------------------------------------------------------
# Namespaces. Elements are matched by (namespace kind, lower-cased local name); the namespace URI
# is normalised (scheme, "www.", case, trailing "/" or "#") because real feeds misspell them.

_PLAIN = "plain"  # no namespace, or the RSS 1.0 / 0.90 namespaces
_ATOM = "atom"
_ITUNES = "itunes"
_MEDIA = "media"
_CCRSS = "ccrss"  # creativeCommons:license (RSS module)
_CC = "cc"  # web.resource.org/cc and creativecommons.org/ns
_DC = "dc"  # Dublin Core elements and terms
_RDF = "rdf"
_PODCAST = "podcast"  # Podcasting 2.0 namespace (podcast:license)
_GPLAY = "googleplay"
_OTHER = "other"

_NS_KINDS: dict[str, str] = {
    "": _PLAIN,
    "purl.org/rss/1.0": _PLAIN,
    "my.netscape.com/rdf/simple/0.9": _PLAIN,
    "w3.org/2005/atom": _ATOM,
    "purl.org/atom/ns": _ATOM,  # Atom 0.3
    "itunes.com/dtds/podcast-1.0.dtd": _ITUNES,
    "search.yahoo.com/mrss": _MEDIA,
    "video.search.yahoo.com/mrss": _MEDIA,
    "backend.userland.com/creativecommonsrssmodule": _CCRSS,
    "cyber.law.harvard.edu/rss/creativecommonsrssmodule.html": _CCRSS,
    "web.resource.org/cc": _CC,
    "creativecommons.org/ns": _CC,
    "purl.org/dc/elements/1.1": _DC,
    "purl.org/dc/terms": _DC,
    "w3.org/1999/02/22-rdf-syntax-ns": _RDF,
    "podcastindex.org/namespace/1.0": _PODCAST,
    "github.com/podcastindex-org/podcast-namespace/blob/main/docs/1.0.md": _PODCAST,
    "google.com/schemas/play-podcasts/1.0": _GPLAY,
}

_RDF_RESOURCE = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}resource"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_XML_SPACE = " \t\r\n"
_LICENSE_RELS = frozenset({"license", "http://www.iana.org/assignments/relation/license"})
_ENCLOSURE_RELS = frozenset({"enclosure", "http://www.iana.org/assignments/relation/enclosure"})
_ALTERNATE_RELS = frozenset({"alternate", "http://www.iana.org/assignments/relation/alternate"})

_Key = tuple[str, str]


class _Kids(list[tuple[str, str, "Element"]]):
    """Child elements with their (namespace kind, local name), also indexed by that key."""

    def __init__(self, children: Iterable[tuple[str, str, Element]]) -> None:
        super().__init__(children)
        self.by_key: dict[_Key, list[Element]] = {}
        for kind, local, el in self:
            self.by_key.setdefault((kind, local), []).append(el)


@functools.lru_cache(maxsize=256)
def _ns_kind(uri: str) -> str:
    u = uri.strip().lower()
    for scheme in ("http://", "https://"):
        if u.startswith(scheme):
            u = u[len(scheme) :]
            break
    u = u.removeprefix("www.").rstrip("/#")
    return _NS_KINDS.get(u, _OTHER)


def _name(el: Element) -> _Key:
    tag = el.tag
    if not isinstance(tag, str):  # comments / processing instructions, if a builder kept them
        return _OTHER, ""
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return _ns_kind(uri), local.lower()
    return _PLAIN, tag.lower()


def _kids(el: Element) -> _Kids:
    return _Kids((*_name(child), child) for child in el)


def _each(kids: _Kids, *keys: _Key) -> list[Element]:
    """Children matching any of the keys, in document order."""
    if len(keys) == 1:
        return list(kids.by_key.get(keys[0], ()))
    return [el for kind, local, el in kids if (kind, local) in keys]


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    return text.strip(_XML_SPACE) or None


def _text(el: Element) -> str | None:
    return _clean("".join(el.itertext()))


def _attr(el: Element, name: str) -> str | None:
    return _clean(el.get(name))


def _first_text(kids: _Kids, *keys: _Key) -> str | None:
    """The first non-empty text, trying the keys in the order given (precedence, not position)."""
    for key in keys:
        for el in _each(kids, key):
            text = _text(el)
            if text is not None:
                return text
    return None


def _unique(items: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item is not None))


def _resolve(base: str, url: str | None) -> str | None:
    if url is None:
        return None
    try:
        return urljoin(base, url)
    except ValueError:  # e.g. "http://[::1" (invalid IPv6 netloc)
        return None


# ---------------------------------------------------------------------------------------------
# Field parsers.

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_INTEGER = re.compile(r"[0-9]{1,30}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MAX_DURATION_PARTS = 3


def parse_duration(text: str | None) -> float | None:
    """itunes:duration -> seconds: "SS", "MM:SS", "HH:MM:SS" or plain seconds ("3600", "12.5").

    The leading part may be any size ("75:00" is 75 minutes); later parts must be below 60;
    only the last part may have a fraction. Anything else (negative, empty parts, units,
    non-ASCII digits, more than three parts) is None.
    """
    if text is None:
        return None
    parts = text.strip(_XML_SPACE).split(":")
    if len(parts) > _MAX_DURATION_PARTS:
        return None
    total = 0.0
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if not _NUMBER.fullmatch(part) or (not last and "." in part):
            return None
        value = float(part)
        if i > 0 and value >= 60:
            return None
        total = total * 60 + value
    return total if math.isfinite(total) else None


def _parse_date(text: str | None) -> datetime.date | None:
    """RFC 822 (RSS pubDate) or ISO 8601 (Atom, dc:date) -> the date as written."""
    if text is None:
        return None
    m = _ISO_DATE.match(text)
    if m:
        try:
            return datetime.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return None
    try:
        return email.utils.parsedate_to_datetime(text).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _parse_length(text: str | None) -> int | None:
    if text is None or not _INTEGER.fullmatch(text):
        return None
    return int(text)


# ---------------------------------------------------------------------------------------------
# Shared pieces of channels and items.


def _link(kids: _Kids) -> str | None:
    """RSS <link>text</link>, or the Atom link with rel absent/alternate (atom:link rel=self and
    friends inside RSS are skipped)."""
    for el in _each(kids, (_PLAIN, "link"), (_ATOM, "link")):
        if el.get("href") is None:
            text = _text(el)
        elif (_attr(el, "rel") or "alternate").lower() in _ALTERNATE_RELS:
            text = _attr(el, "href")
        else:
            continue
        if text is not None:
            return text
    return None


def _person(kids: _Kids) -> str | None:
    """<author>: Atom's author/name, else the element's own text (RSS: an e-mail address)."""
    for el in _each(kids, (_PLAIN, "author"), (_ATOM, "author")):
        sub = _kids(el)
        text = _first_text(sub, (_ATOM, "name"), (_PLAIN, "name")) if sub else _text(el)
        if text is not None:
            return text
    return None


def _author(kids: _Kids) -> str | None:
    return (
        _first_text(kids, (_ITUNES, "author"), (_DC, "creator"))
        or _person(kids)
        or _first_text(kids, (_GPLAY, "author"), (_PLAIN, "managingeditor"))
        or next(
            (
                name
                for owner in _each(kids, (_ITUNES, "owner"))
                if (name := _first_text(_kids(owner), (_ITUNES, "name"))) is not None
            ),
            None,
        )
    )


def _license_marks(kids: _Kids) -> tuple[str, ...]:
    """Raw licence / rights marks in document order (media:group is looked into)."""
    marks: list[str | None] = []
    for kind, local, el in kids:
        if kind == _CCRSS and local == "license":
            marks.append(_text(el))
        elif kind in (_DC, _CC) and local in ("rights", "license", "accessrights"):
            marks += [_attr(el, _RDF_RESOURCE), _text(el)]
        elif kind == _MEDIA and local == "license":
            marks += [_attr(el, "href"), _text(el)]
        elif kind == _MEDIA and local == "copyright":
            marks.append(_text(el))
        elif kind == _MEDIA and local == "group":
            marks += _license_marks(
                _Kids(k for k in _kids(el) if k[0] == _MEDIA and k[1] in ("license", "copyright"))
            )
        elif kind in (_PLAIN, _ATOM) and local == "link":
            if (_attr(el, "rel") or "").lower() in _LICENSE_RELS:
                marks.append(_attr(el, "href"))
        elif kind in (_PLAIN, _ATOM) and local in ("rights", "copyright"):
            marks.append(_text(el))
        elif kind == _PODCAST and local == "license":
            marks += [_text(el), _attr(el, "url")]
    return _unique(marks)


def _language(kids: _Kids, *elements: Element) -> str | None:
    return _first_text(kids, (_PLAIN, "language"), (_DC, "language")) or next(
        (lang for el in elements if (lang := _attr(el, _XML_LANG)) is not None), None
    )


# ---------------------------------------------------------------------------------------------
# Entries.


@dataclass(frozen=True)
class _Enclosure:
    url: str
    type: str | None
    length: int | None
    duration_s: float | None
    is_av: bool


def _enclosure(el: Element, base: str, url_attr: str, length_attr: str) -> _Enclosure | None:
    url = _resolve(base, _attr(el, url_attr))
    if url is None:
        return None
    mime = _attr(el, "type")
    medium = (_attr(el, "medium") or "").lower()
    is_av = mime.lower().startswith(("audio/", "video/")) if mime else medium in ("audio", "video")
    return _Enclosure(
        url=url,
        type=mime,
        length=_parse_length(_attr(el, length_attr) or _attr(el, length_attr.lower())),
        duration_s=parse_duration(_attr(el, "duration")),
        is_av=is_av,
    )


def _pick_enclosure(kids: _Kids, base: str) -> _Enclosure | None:
    found: list[_Enclosure | None] = []
    for kind, local, el in kids:
        if kind == _PLAIN and local == "enclosure":
            found.append(_enclosure(el, base, "url", "length"))
        elif (
            kind in (_PLAIN, _ATOM)
            and local == "link"
            and (_attr(el, "rel") or "").lower() in _ENCLOSURE_RELS
        ):
            found.append(_enclosure(el, base, "href", "length"))
    candidates = [c for c in found if c is not None]
    if not candidates:  # Media RSS only counts when there is no usable <enclosure>
        groups = [_kids(g) for g in _each(kids, (_MEDIA, "group"))]
        contents = _each(kids, (_MEDIA, "content")) + [
            el for group in groups for el in _each(group, (_MEDIA, "content"))
        ]
        media = (_enclosure(el, base, "url", "fileSize") for el in contents)
        candidates = [c for c in media if c is not None]
    return next((c for c in candidates if c.is_av), candidates[0] if candidates else None)


def _split_commas(texts: Iterable[str | None]) -> list[str | None]:
    return [_clean(part) for text in texts if text is not None for part in text.split(",")]


def _keywords(kids: _Kids) -> tuple[str, ...]:
    words: list[str | None] = []
    for kind, local, el in kids:
        if kind in (_ITUNES, _MEDIA) and local == "keywords":
            words += _split_commas([_text(el)])
        elif kind == _MEDIA and local == "group":
            words += _split_commas(_text(k) for k in _each(_kids(el), (_MEDIA, "keywords")))
        elif kind in (_PLAIN, _ATOM) and local == "category":
            words.append(_attr(el, "term") if el.get("term") is not None else _text(el))
        elif kind == _ITUNES and local == "category":
            words += [_attr(c, "text") for c in el.iter() if _name(c) == (_ITUNES, "category")]
    return _unique(words)


def _published(kids: _Kids) -> datetime.date | None:
    keys: list[_Key] = [
        (_PLAIN, "pubdate"),
        (_ATOM, "published"),
        (_PLAIN, "published"),
        (_ATOM, "issued"),
        (_DC, "date"),
        (_DC, "issued"),
        (_DC, "created"),
        (_ATOM, "updated"),
        (_PLAIN, "updated"),
        (_ATOM, "modified"),
    ]
    for key in keys:
        for el in _each(kids, key):
            date = _parse_date(_text(el))
            if date is not None:
                return date
    return None


def _entry(item: Element, base: str) -> FeedEntry:
    kids = _kids(item)
    enclosure = _pick_enclosure(kids, base)
    duration = parse_duration(_first_text(kids, (_ITUNES, "duration")))
    if duration is None and enclosure is not None:
        duration = enclosure.duration_s
    return FeedEntry(
        guid=_first_text(kids, (_PLAIN, "guid"), (_ATOM, "id"), (_PLAIN, "id")),
        title=_first_text(
            kids, (_PLAIN, "title"), (_ATOM, "title"), (_ITUNES, "title"), (_MEDIA, "title")
        ),
        link=_link(kids),
        enclosure_url=enclosure.url if enclosure else None,
        enclosure_type=enclosure.type if enclosure else None,
        enclosure_length=enclosure.length if enclosure else None,
        published=_published(kids),
        duration_s=duration,
        author=_author(kids),
        language=_language(kids, item),
        license_marks=_license_marks(kids),
        keywords=_keywords(kids),
    )


# ---------------------------------------------------------------------------------------------
# Documents.


class _MultiByteEncodingError(FeedError):
    """pyexpat cannot read the declared encoding; retried after transcoding to UTF-8."""


_XML_DECL_ENCODING = re.compile(
    rb"""(<\?xml[^>]*?encoding\s*=\s*["'])([A-Za-z0-9._-]{1,40})(["'])"""
)


def _to_utf8(data: bytes) -> bytes:
    """Transcode a document in a multi-byte encoding expat lacks (Shift_JIS, GBK, Big5, ...)."""
    m = _XML_DECL_ENCODING.match(data)
    if m is None:
        raise FeedError("unparseable feed: unsupported multi-byte encoding")
    encoding = m[2].decode("ascii")
    try:
        body = data[m.end() :].decode(encoding).encode("utf-8")
    except (LookupError, ValueError) as exc:  # UnicodeError is a ValueError
        raise FeedError(f"feed is not valid {encoding}: {exc}") from None
    return m[1] + b"utf-8" + m[3] + body


def _parse_xml(data: bytes) -> Element:
    stripped = data.lstrip(b" \t\r\n")
    if stripped.startswith(b"<?xml"):  # stray blank lines before the declaration are common
        data = stripped
    try:
        return _defused_parse(data)
    except _MultiByteEncodingError:
        return _defused_parse(_to_utf8(data))


def _defused_parse(data: bytes) -> Element:
    try:
        root: Element = DefusedET.fromstring(
            data, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except defusedxml.EntitiesForbidden as exc:
        raise FeedError(f"feed refused: it declares XML entities ({exc})") from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise FeedError(f"feed refused: it references an external entity ({exc})") from None
    except defusedxml.DefusedXmlException as exc:
        raise FeedError(f"feed refused: {exc}") from None
    except DefusedET.ParseError as exc:
        raise FeedError(f"malformed XML: {exc}") from None
    except (ValueError, LookupError, TypeError) as exc:  # odd encoding declarations
        if str(exc) == "multi-byte encodings are not supported":
            raise _MultiByteEncodingError(str(exc)) from None
        raise FeedError(f"unparseable feed: {type(exc).__name__}: {exc}") from None
    return root


def parse_feed(data: bytes, feed_url: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Feed:
    """Parse an RSS 2.0 / RSS 1.0 / Atom (1.0, 0.3) feed.

    Entries without an enclosure are kept (``enclosure_url`` None). Enclosure URLs are resolved
    against ``feed_url``; an enclosure whose URL cannot be resolved is skipped. Raises
    :class:`FeedError` (a ValueError) for oversize, malformed or refused documents and for
    documents that are XML but not a feed.
    """
    if len(data) > max_bytes:
        raise FeedError(f"feed is {len(data)} bytes, over the limit of {max_bytes}")
    root = _parse_xml(data)
    kind, local = _name(root)
    if local in ("rss", "rdf") and kind in (_PLAIN, _RDF):
        channel = next((el for _, name, el in _kids(root) if name == "channel"), None)
        if channel is None:
            raise FeedError(f"<{local}> feed has no <channel>")
        items = [el for parent in (channel, root) for el in _each(_kids(parent), (_PLAIN, "item"))]
        elements = [channel, root]
    elif local == "feed" and kind in (_ATOM, _PLAIN):
        channel = root
        items = _each(_kids(root), (_ATOM, "entry"), (_PLAIN, "entry"))
        elements = [root]
    else:
        raise FeedError(f"not an RSS or Atom feed (root element {local[:80]!r})")
    kids = _kids(channel)
    return Feed(
        title=_first_text(kids, (_PLAIN, "title"), (_ATOM, "title"), (_ITUNES, "title")),
        link=_link(kids),
        author=_author(kids),
        language=_language(kids, *elements),
        license_marks=_license_marks(kids),
        entries=tuple(_entry(item, feed_url) for item in items),
    )
