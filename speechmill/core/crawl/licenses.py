"""Licence marks -> a normalised vocabulary, the most restrictive of several, and policy checks.

yt-dlp fills `license` for few extractors and for no generic page or feed, so
licence marks are parsed here from whatever carries them: CC URLs and badge
images, SPDX ids, the human names sites print, `<a rel="license">` links and
`<meta>` tags. Everything is pure and never raises on hostile input.

Vocabulary (the ids `normalize_license` returns)
------------------------------------------------

==========================  ==============================================================
id                          meaning
==========================  ==============================================================
``cc0-1.0``                 CC0 1.0 public-domain dedication (the only CC0 version)
``pdm-1.0``                 CC Public Domain Mark 1.0
``pdm``                     "public domain" claimed without a named tool
``cc-by[-nc][-sa|-nd]-V``   a CC licence with version V in 1.0, 2.0, 2.1, 2.5, 3.0, 4.0
``cc-by[-nc][-sa|-nd]``     the same licence when the mark names no version (YouTube's
                            "Creative Commons Attribution license (reuse allowed)" -> cc-by)
``all-rights-reserved``     "All rights reserved", "Standard YouTube License", ...
``unknown``                 nothing recognised (not a mark: it never wins a conflict)
==========================  ==============================================================

A family is the id without its version (`license_family`): ``cc0``, ``pdm``,
``cc-by``, ``cc-by-sa``, ``cc-by-nd``, ``cc-by-nc``, ``cc-by-nc-sa``,
``cc-by-nc-nd``, ``all-rights-reserved``. Ported licences keep the version and
drop the jurisdiction (``/licenses/by/3.0/us/`` -> ``cc-by-3.0``). The retired
CC licences without BY (``/licenses/sa/1.0/``), the sampling licences and the
impossible ND+SA combination are ``unknown``.

Restrictiveness (`restrictiveness`, higher = more restrictive)
--------------------------------------------------------------

    cc0 = pdm (0) < cc-by (1) < cc-by-sa (2) < cc-by-nd (3) < cc-by-nc (4)
      < cc-by-nc-sa (5) < cc-by-nc-nd (6) < all-rights-reserved (7);   unknown = -1

Conflicting marks (an item's own and its page's or feed's, or several on one
page) resolve to the most restrictive known one (`resolve`). Ties: cc0 before
pdm, an id with a version before one without, then the higher version.

Policy (`policy_decision`)
--------------------------

`deny` always wins. With `allow` unset everything else passes, ``unknown``
included; with `allow` set only listed licences pass and ``unknown`` only if
``unknown`` itself is listed. An entry is a family (``cc-by`` matches every
``cc-by-*`` version but not ``cc-by-sa`` or ``cc-by-nc``), a full id
(``cc-by-4.0`` matches exactly that id) or ``pd`` / ``public-domain`` (cc0 and
pdm). Entries nothing can match (typos) match nothing; `is_policy_entry` lets
configuration code reject them up front.

HTML
----

Licence statements in text
--------------------------

`text_license_marks` finds the common English statements of a licence in running
text (a page's visible text: not `<script>`, `<style>` or the `<title>`):

* the CC names: "Creative Commons Attribution-ShareAlike 4.0 International License",
  "Creative Commons Attribution-NonCommercial license", "Creative Commons BY-SA 4.0";
* the short forms: "CC BY 4.0", "CC BY-NC-ND 3.0", "CC-BY-SA-4.0";
* a licence name without "Creative Commons" only with a version and a CC suffix:
  "Attribution-NonCommercial 4.0 International", "Attribution 2.5 Generic";
* CC0: "CC0", "CC0 1.0 Universal", "Creative Commons Zero";
* public-domain dedications: "dedicated to the public domain", "released into the
  public domain", "is in the public domain", "Public Domain Dedication" (CC0's own
  name), "Public Domain Mark 1.0", "No Rights Reserved".

A name without version or modifiers ("Creative Commons Attribution", "CC BY") counts
only where its paragraph speaks of licensing (`licensed`, `licence`, `under`); a bare
mention ("we love Creative Commons", "a Creative Commons license") is no mark, and
neither is a statement negated just before ("not released into the public domain").
Each statement found is a raw mark (the statement as written), so it goes through
`normalize_license` and `resolve` like every other mark.

HTML
----

`html_license_marks` and `html_meta` run `html.parser.HTMLParser` over the page
(no regex over the whole document). The parser is fed once and never `close()`d
(its end-of-input recovery is quadratic on some malformed input); a construct
left open to the end of the input (an unclosed tag, comment or `<script>`) is
skipped one character at a time instead, with the total re-parsed text bounded
to a small multiple of the page size, so the work stays linear.
"""

from __future__ import annotations

import contextlib
import html as html_lib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = [
    "ALL_RIGHTS_RESERVED",
    "ARR_MARK",
    "FAMILIES",
    "UNKNOWN",
    "VERSIONS",
    "HtmlScan",
    "html_license_marks",
    "html_meta",
    "is_policy_entry",
    "license_family",
    "normalize_license",
    "policy_decision",
    "resolve",
    "restrictiveness",
    "scan_html",
    "text_license_marks",
]

UNKNOWN = "unknown"
ALL_RIGHTS_RESERVED = "all-rights-reserved"

CC0 = "cc0"
PDM = "pdm"

# Family -> restrictiveness rank (see the module docstring).
_RANK: dict[str, int] = {
    CC0: 0,
    PDM: 0,
    "cc-by": 1,
    "cc-by-sa": 2,
    "cc-by-nd": 3,
    "cc-by-nc": 4,
    "cc-by-nc-sa": 5,
    "cc-by-nc-nd": 6,
    ALL_RIGHTS_RESERVED: 7,
}
FAMILIES: tuple[str, ...] = tuple(_RANK)
VERSIONS: tuple[str, ...] = ("1.0", "2.0", "2.1", "2.5", "3.0", "4.0")
_VERSION_SET = frozenset(VERSIONS)
_PD_FAMILIES = frozenset({CC0, PDM})
_PD_ALIASES = frozenset({"pd", "public-domain", "public domain", "publicdomain"})

# Only this much of one raw mark is looked at (a licence mark is short; this bounds the work).
_MAX_RAW = 65536

# ---------------------------------------------------------------------------------------------
# Ids.


def _parse_id(license_id: str) -> tuple[str, str | None] | None:
    """(family, version or None) for an id of the vocabulary, else None."""
    if license_id in _RANK:
        return license_id, None
    head, sep, version = license_id.rpartition("-")
    if not sep or head not in _RANK or head == ALL_RIGHTS_RESERVED or version not in _VERSION_SET:
        return None
    if head in _PD_FAMILIES and version != "1.0":
        return None
    return head, version


def license_family(license_id: str) -> str:
    """The id without its version: `cc-by-nc-sa-3.0` -> `cc-by-nc-sa`; others unchanged."""
    parsed = _parse_id(license_id)
    return parsed[0] if parsed else license_id


def restrictiveness(license_id: str) -> int:
    """Rank of a licence, higher = more restrictive; -1 for `unknown` (not a mark).

    An id outside the vocabulary is normalised first, so raw marks work too.
    """
    parsed = _parse_id(license_id) or _parse_id(normalize_license(license_id))
    return _RANK[parsed[0]] if parsed else -1


def _sort_key(license_id: str) -> tuple[int, int, int, tuple[int, ...]]:
    parsed = _parse_id(license_id)
    if parsed is None:
        return (-1, 0, 0, ())
    family, version = parsed
    numbers = tuple(int(x) for x in version.split(".")) if version else ()
    return (_RANK[family], int(family == CC0), int(version is not None), numbers)


def _most_restrictive(ids: Iterable[str]) -> str:
    known = [i for i in ids if _parse_id(i) is not None]
    return max(known, key=_sort_key) if known else UNKNOWN


def resolve(marks: Iterable[str | None]) -> str:
    """The most restrictive known licence among raw marks (each normalised); else `unknown`."""
    return _most_restrictive(normalize_license(m) for m in marks)


# ---------------------------------------------------------------------------------------------
# Normalising one raw mark.

# creativecommons.org/licenses/<slug>/<version>, .../publicdomain/zero/1.0, and the badge
# hosts (licensebuttons.net/l/..., i.creativecommons.org/l/..., /p/zero/..., /p/mark/...).
_CC_URL_RE = re.compile(
    r"(?<![a-z0-9-])(?:creativecommons\.org|licensebuttons\.net)"
    r"/(licenses|publicdomain|l|p)/([a-z0-9+-]{0,40})(?:/v?(\d{1,2}(?:\.\d{1,2})?))?"
)
# mirrors.creativecommons.org/presskit/buttons/88x31/png/by-nc-sa.png (no version).
_CC_BUTTON_RE = re.compile(
    r"(?<![a-z0-9-])creativecommons\.org/presskit/buttons/[0-9x]{1,8}/(?:png|svg)"
    r"/([a-z0-9-]{1,40})\.(?:png|svg)"
)
_TOKEN_RE = re.compile(r"[^\W_]+(?:\.\d+)*")
_VERSION_RE = re.compile(r"v?(\d{1,2})(?:\.(\d{1,2}))?")

_MODS_1: dict[str, str] = {
    "nc": "nc",
    "noncommercial": "nc",
    "nd": "nd",
    "noderivs": "nd",
    "noderivatives": "nd",
    "noderivative": "nd",
    "sa": "sa",
    "sharealike": "sa",
}
_MODS_2: dict[tuple[str, str], str] = {
    ("non", "commercial"): "nc",
    ("no", "derivatives"): "nd",
    ("no", "derivs"): "nd",
    ("no", "derivative"): "nd",
    ("share", "alike"): "sa",
}
_NEGATIONS = frozenset({"no", "not", "non", "without", "never", "isn", "aren"})
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))

# Phrases (lowercase, single-spaced words) that mean all rights reserved.
_ARR_PHRASES: tuple[str, ...] = (
    "all rights reserved",
    "all right reserved",
    "standard youtube license",
    "standard youtube licence",
    "tous droits réservés",
    "alle rechte vorbehalten",
    "todos los derechos reservados",
    "todos os direitos reservados",
    "tutti i diritti riservati",
    "alle rechten voorbehouden",
)
# SoundCloud's `no-rights-reserved`: public domain, no named tool.
_PD_PHRASES: tuple[str, ...] = ("no rights reserved",)


def _version(token: str) -> str | None:
    if len(token) > 6:
        return None
    m = _VERSION_RE.fullmatch(token)
    if m is None:
        return None
    version = f"{int(m[1])}.{int(m[2] or 0)}"
    return version if version in _VERSION_SET else None


def _cc_id(mods: set[str] | frozenset[str], version: str | None) -> str | None:
    if "nd" in mods and "sa" in mods:
        return None  # no such licence
    family = "cc-by" + "-nc" * ("nc" in mods) + "-sa" * ("sa" in mods) + "-nd" * ("nd" in mods)
    return f"{family}-{version}" if version else family


def _from_slug(slug: str, version: str | None) -> str | None:
    """`by-nc-sa` (a CC URL path segment) -> an id; None for anything else."""
    parts = slug.split("-")
    mods = parts[1:]
    if parts[0] != "by" or len(set(mods)) != len(mods) or not set(mods) <= {"nc", "nd", "sa"}:
        return None
    return _cc_id(set(mods), version)


def _url_candidates(low: str) -> list[str]:
    out: list[str] = []
    for m in _CC_URL_RE.finditer(low):
        kind, slug, raw_version = m.group(1), m.group(2), m.group(3)
        version = _version(raw_version) if raw_version else None
        found: str | None
        if kind in ("publicdomain", "p"):
            found = {"zero": "cc0-1.0", "mark": "pdm-1.0"}.get(slug)
        elif slug == "publicdomain":  # the retired /licenses/publicdomain/ dedication
            found = PDM
        else:
            found = _from_slug(slug, version)
        if found:
            out.append(found)
    for m in _CC_BUTTON_RE.finditer(low):
        slug = m.group(1)
        found = {"cc-zero": "cc0-1.0", "publicdomain": PDM}.get(slug) or _from_slug(slug, None)
        if found:
            out.append(found)
    return out


def _without_urls(low: str) -> str:
    """Drop URL-like chunks so their path words are not read as licence words."""
    kept = []
    for chunk in low.split():
        host, slash, _ = chunk.partition("/")
        tld = host.rpartition(".")[2] if "." in host else ""
        if "://" in chunk or chunk.startswith("www.") or (slash and tld.isalpha()):
            continue
        kept.append(chunk)
    return " ".join(kept)


def _read_mods(tokens: list[str], j: int) -> tuple[set[str], str | None]:
    """Modifiers (nc/nd/sa in any spelling) from tokens[j], then an optional version."""
    n = len(tokens)
    mods: set[str] = set()
    while j < n:
        t = tokens[j]
        if t in _MODS_1:
            mods.add(_MODS_1[t])
            j += 1
            continue
        nxt = tokens[j + 1] if j + 1 < n else ""
        if (t, nxt) in _MODS_2:
            mods.add(_MODS_2[t, nxt])
            j += 2
            if (t, nxt) == ("no", "derivative") and j < n and tokens[j] == "works":
                j += 1
            continue
        if t == "and" and nxt and (nxt in _MODS_1 or (nxt, tokens[min(j + 2, n - 1)]) in _MODS_2):
            j += 1
            continue
        break
    if j < n and tokens[j] in ("license", "licence"):
        j += 1
    return mods, (_version(tokens[j]) if j < n else None)


def _text_candidates(tokens: list[str]) -> list[str]:
    n = len(tokens)
    present = set(tokens)
    cc_context = bool(present & {"cc", "creativecommons"}) or any(
        tokens[i] == "creative" and tokens[i + 1] == "commons" for i in range(n - 1)
    )
    # A bare CC slug like `by-nc-sa` or `by-sa/4.0` (Vimeo, URL fragments).
    bare = (
        n >= 2
        and tokens[0] == "by"
        and all(t in _MODS_1 or _version(t) is not None for t in tokens[1:])
    )
    out: list[str] = []
    for i, t in enumerate(tokens):
        prev = tokens[i - 1] if i else ""
        nxt = tokens[i + 1] if i + 1 < n else ""
        found: str | None = None
        if t == "by" and (prev in ("cc", "commons") or (i == 0 and bare)):
            mods, version = _read_mods(tokens, i + 1)
            found = _cc_id(mods, version)
        elif t == "attribution" and prev not in _NEGATIONS:
            mods, version = _read_mods(tokens, i + 1)
            if cc_context or mods or version:
                found = _cc_id(mods, version)
        elif t == "cc0" or (t in ("cc", "commons") and nxt in ("0", "zero")):
            found = "cc0-1.0"
        elif t == "pdm":
            found = "pdm-1.0" if nxt and _version(nxt) == "1.0" else PDM
        elif t in ("publicdomain", "pddc"):
            found = {"zero": "cc0-1.0", "mark": "pdm-1.0"}.get(nxt, PDM)
        elif t == "public" and nxt == "domain" and _NEGATIONS.isdisjoint(tokens[max(0, i - 3) : i]):
            after = tokens[i + 2 : i + 5]
            if after[:1] == ["mark"]:
                found = "pdm-1.0"
            elif after[:1] == ["dedication"] and after[1:3] != ["and", "certification"]:
                found = "cc0-1.0"  # PeerTube's and CC0's own name for CC0
            else:
                found = PDM
        if found:
            out.append(found)
    return out


def _normalize(raw: str) -> str:
    low = raw[:_MAX_RAW].lower().translate(_DASHES)
    candidates = _url_candidates(low)
    tokens = _TOKEN_RE.findall(_without_urls(low))
    words = " " + " ".join(tokens) + " "
    if any(f" {p} " in words for p in _ARR_PHRASES):
        candidates.append(ALL_RIGHTS_RESERVED)
    if any(f" {p} " in words for p in _PD_PHRASES):
        candidates.append(PDM)
    candidates += _text_candidates(tokens)
    return _most_restrictive(candidates)


def normalize_license(raw: str | None) -> str:
    """One raw licence mark (URL, SPDX id, human text) -> an id of the vocabulary.

    Several marks in one string resolve to the most restrictive. Anything
    unrecognised is `unknown`; never raises.
    """
    if not isinstance(raw, str) or not raw:
        return UNKNOWN
    try:
        return _normalize(raw)
    except Exception:  # hostile input must never break a pipeline; unrecognised = unknown
        return UNKNOWN


# ---------------------------------------------------------------------------------------------
# Policy.


def _entry_match(entry: str, license_id: str) -> bool:
    e = entry.strip().lower()
    if e == UNKNOWN:
        return license_id == UNKNOWN
    parsed = _parse_id(license_id)
    if parsed is None:
        return False
    family, _ = parsed
    if e in _PD_ALIASES:
        return family in _PD_FAMILIES
    target = _parse_id(e)
    if target is None:
        # Spelled some other way (`CC-BY-SA-4.0`, a URL): normalise, but never to unknown.
        normalized = normalize_license(e)
        target = _parse_id(normalized)
        if target is None:
            return False
        e = normalized
    return family == e if target[1] is None else license_id == e


def is_policy_entry(entry: str) -> bool:
    """True if an allow/deny entry can match some licence (rejects typos like `cc-bx`)."""
    e = entry.strip().lower()
    if e in (UNKNOWN, *_PD_ALIASES) or _parse_id(e) is not None:
        return True
    return normalize_license(e) != UNKNOWN


def _listing(entries: Sequence[str]) -> str:
    return "[" + ", ".join(entries) + "]"


def policy_decision(
    license_id: str, allow: Sequence[str] | None, deny: Sequence[str]
) -> tuple[bool, str]:
    """(allowed, reason) for one licence against a source's allow/deny lists.

    `license_id` is normalised first (ids pass through unchanged). Deny wins;
    `allow=None` lets everything else through; with `allow` set, `unknown`
    passes only if listed.
    """
    if isinstance(allow, str):
        allow = [allow]
    if isinstance(deny, str):
        deny = [deny]
    lic = normalize_license(license_id)
    for entry in deny:
        if _entry_match(entry, lic):
            return False, f"licence {lic} is refused by deny entry {entry.strip()}"
    if allow is None:
        return True, f"licence {lic} is not denied and no allow list is set"
    for entry in allow:
        if _entry_match(entry, lic):
            return True, f"licence {lic} is allowed by allow entry {entry.strip()}"
    if lic == UNKNOWN:
        return False, f"licence is unknown and allow {_listing(allow)} does not list unknown"
    return False, f"licence {lic} is not in allow {_listing(allow)}"


# ---------------------------------------------------------------------------------------------
# Licence statements in running text.

# Whitespace inside one paragraph (U+2029 separates paragraphs), and a dash of any kind.
_WS = r"[^\S\u2029]{1,40}"
_DASH = r"[-\u2010-\u2015\u2212]"
_SEP = rf"(?:(?:{_WS})?{_DASH}(?:{_WS})?|{_WS})"
_MOD = (
    rf"(?:non{_SEP}?commercial|share{_SEP}?alike|no{_SEP}?derivative{_WS}works"
    rf"|no{_SEP}?derivatives|no{_SEP}?derivs|nc|sa|nd)"
)
_MODS = rf"(?:{_SEP}{_MOD}\b){{0,4}}"
_VER = rf"(?:{_SEP}(?:licen[cs]e{_SEP})?v?(?:1\.0|2\.0|2\.1|2\.5|3\.0|4\.0)(?![\d.]*\d))"
_CC_SUFFIX = r"(?:international|unported|generic|universal)"
_LIC_WORD = rf"(?:{_SEP}(?:public{_WS})?licen[cs]e\b)"
_PUBLIC_DOMAIN = rf"the{_WS}public{_WS}domain\b"
_NEG_WORDS = frozenset({"not", "no", "never", "isn't", "aren't", "isnt", "arent", "without", "nor"})
_STATEMENT_RE = re.compile(
    # The lookarounds let the engine skip most positions fast (a page can be megabytes).
    rf"""
    (?<!\w)(?=[abcdinpr])
    (?:(?P<full>creative{_WS}commons{_SEP}(?:attribution|by)\b(?P<fm>{_MODS})(?P<fv>{_VER})?
        (?P<fs>{_SEP}{_CC_SUFFIX}\b)?(?P<fl>{_LIC_WORD})?)
    | (?P<short>cc{_SEP}by\b(?P<sm>{_MODS})(?P<sv>{_VER})?(?:{_SEP}{_CC_SUFFIX}\b)?)
    | (?P<named>attribution\b{_MODS}{_VER}{_SEP}(?:international|unported|generic)\b
        {_LIC_WORD}?)
    | (?P<zero>cc0\b(?:{_SEP}1\.0)?(?:{_SEP}universal\b)?
        | creative{_WS}commons{_WS}zero\b | cc{_WS}zero\b)
    | (?P<pd>(?:dedicated|released|placed|put|committed|contributed)
          (?:{_WS}[\w']{{1,30}}){{0,3}}?{_WS}(?:to|in|into){_WS}{_PUBLIC_DOMAIN}
        | (?:is|are|be|now){_WS}in{_WS}{_PUBLIC_DOMAIN}
        | public{_WS}domain{_WS}(?:dedication|mark(?:{_WS}1\.0)?)\b
        | no{_WS}rights{_WS}reserved\b))
    """,
    re.IGNORECASE | re.VERBOSE,
)
_LICENSING_CONTEXT = re.compile(r"licen[cs]|\bunder\b", re.IGNORECASE)
_BLOCK_BREAK = "\u2029"  # paragraph separator: block boundaries in a page's visible text
_MAX_STATEMENTS = 64
_CONTEXT_BEFORE = 200
_CONTEXT_AFTER = 120
# The longest statement the pattern can match is far shorter than this.
_STATEMENT_OVERLAP = 1024


def _negated(text: str, start: int) -> bool:
    words = text[max(0, start - 40) : start].replace(_BLOCK_BREAK, " . ").lower().split()
    return not _NEG_WORDS.isdisjoint(w.strip(",;:()") for w in words[-3:])


def _paragraph(text: str, start: int, end: int) -> str:
    lo = max(0, start - _CONTEXT_BEFORE)
    hi = min(len(text), end + _CONTEXT_AFTER)
    before = text[lo:start].rpartition(_BLOCK_BREAK)[2]
    after = text[end:hi].partition(_BLOCK_BREAK)[0]
    return before + " " + after


def _statement_ok(m: re.Match[str], text: str) -> bool:
    if _negated(text, m.start()):
        return False
    if m["full"] is not None:
        specific = m["fm"] or m["fv"] or m["fs"] or m["fl"]
    elif m["short"] is not None:
        specific = m["sm"] or m["sv"]
    else:
        return True
    return bool(specific) or bool(_LICENSING_CONTEXT.search(_paragraph(text, m.start(), m.end())))


def _statements(text: str, limit: int) -> list[tuple[int, str]]:
    """(start, statement) of each licence statement in prepared text, at most `limit`."""
    out: list[tuple[int, str]] = []
    for m in _STATEMENT_RE.finditer(text):
        if len(out) >= limit:
            break
        if _statement_ok(m, text):
            statement = " ".join(m.group().translate(_DASHES).split())
            if normalize_license(statement) != UNKNOWN:
                out.append((m.start(), statement))
    return out


def text_license_marks(text: str) -> list[str]:
    """Licence statements in running text, as written (dashes folded, spaces collapsed).

    Paragraph breaks may be marked with U+2029; statements never span them. See
    the module docstring for what counts. Never raises on any string.
    """
    if not isinstance(text, str) or not text:
        return []
    try:
        seen: set[str] = set()
        out: list[str] = []
        for _, statement in _statements(text, _MAX_STATEMENTS):
            if statement not in seen:
                seen.add(statement)
                out.append(statement)
        return out
    except Exception:  # hostile input never breaks a pipeline
        return []


# ---------------------------------------------------------------------------------------------
# HTML.

_URL_ATTRS = frozenset({"href", "src", "data-src", "data-lazy-src", "data-original", "resource"})
_CC_NEEDLES: tuple[str, ...] = (
    "creativecommons.org/licenses",
    "creativecommons.org/publicdomain",
    "creativecommons.org/l/",
    "creativecommons.org/p/",
    "creativecommons.org/presskit/buttons",
    "licensebuttons.net/l/",
    "licensebuttons.net/p/",
)
# <meta name|property|itemprop=...> keys (lowercase, ':' read as '.') whose content is a mark.
_LICENSE_META = frozenset(
    {
        "license",
        "licence",
        "rights",
        "dc.rights",
        "dc.license",
        "dcterms.license",
        "dcterms.rights",
        "cc.license",
        "og.license",
        "article.license",
    }
)
_META_KEYS: dict[str, str] = {
    "og:title": "og:title",
    "og:description": "og:description",
    "og:audio": "og:audio",
    "og:video": "og:video",
}
_META_FALLBACK: dict[str, str] = {
    "og:audio:url": "og:audio",
    "og:audio:secure_url": "og:audio",
    "og:video:url": "og:video",
    "og:video:secure_url": "og:video",
}
ARR_MARK = "All rights reserved"
# Raw-text elements whose content is not visible text (newer CPythons parse more of them as
# CDATA, and <title>/<textarea> as escapable raw text, which stays visible text).
_RAW_TEXT = frozenset({"script", "style", "xmp", "iframe", "noembed", "noframes", "noscript"})
_MAX_TITLE = 4096
_MAX_ANCHOR = 512
_MAX_LD_JSON = 1 << 20
_MAX_LD_NODES = 10000
# Re-parsing after an unterminated construct is bounded by this many times the page size.
_REPARSE_FACTOR = 2
_REPARSE_EXTRA = 1 << 18
# No phrase of _ARR_PHRASES is shorter than this: shorter text chunks are not looked at.
_MIN_ARR_TEXT = min(len(p) for p in _ARR_PHRASES)
# Visible text is scanned for licence statements in pieces of about this many characters.
_TEXT_CHUNK = 1 << 16
# Elements that break running text into paragraphs (statements never span them).
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "br", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
        "h3", "h4", "h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre",
        "section", "summary", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip


def _ld_values(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items[:32]:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out += [v for k in ("@id", "url", "name") if isinstance(v := item.get(k), str)]
    return out


def _ld_json_licenses(text: str) -> list[str]:
    """`license` values anywhere in one JSON-LD block (walked without recursion)."""
    if len(text) > _MAX_LD_JSON:
        return []
    try:
        data: object = json.loads(text)
    except (ValueError, RecursionError):
        return []
    out: list[str] = []
    stack: list[object] = [data]
    seen = 0
    while stack and seen < _MAX_LD_NODES:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.lower().rsplit(":", 1)[-1] == "license":
                    out += _ld_values(value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return out


@dataclass(frozen=True)
class HtmlScan:
    """What one pass over a page found: raw licence marks and title/attribution metadata."""

    marks: list[str]
    meta: dict[str, str]


class _PageScanner(HTMLParser):
    def __init__(self) -> None:
        self.marks: list[str] = []
        self.meta: dict[str, str] = {}
        self._seen: set[str] = set()
        self._svg_depth = 0
        self._title: list[str] | None = None
        self._title_len = 0
        self._anchor: list[str] | None = None
        self._anchor_len = 0
        self._ld_json: list[str] | None = None
        self._ld_len = 0
        self._arr = False
        self._text: list[str] = []  # visible text not yet scanned for licence statements
        self._text_len = 0
        self._statements = 0
        super().__init__(convert_charrefs=True)

    # -- results

    def _mark(self, value: str | None) -> None:
        if value is None:
            return
        v = value.strip()
        if v and v not in self._seen:
            self._seen.add(v)
            self.marks.append(v)

    def _set_meta(self, key: str, value: str) -> None:
        self.meta.setdefault(key, value)

    def _visible(self, piece: str) -> None:
        self._text.append(piece)
        self._text_len += len(piece)
        if self._text_len >= _TEXT_CHUNK:
            self._scan_text(final=False)

    def _scan_text(self, final: bool) -> None:
        """Licence statements in the visible text so far; keeps a tail for the next piece.

        A statement starting in the kept tail is read with the next piece (so it
        is found once, whole); the work stays linear in the page size.
        """
        text = "".join(self._text)
        cut = len(text) if final else max(0, len(text) - _STATEMENT_OVERLAP)
        for start, statement in _statements(text, _MAX_STATEMENTS - self._statements):
            if start < cut:
                self._statements += 1
                self._mark(statement)
        self._text = [] if final else [text[cut:]]
        self._text_len = 0 if final else len(text) - cut

    # -- parser callbacks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a: dict[str, str] = {}
        for name, value in attrs:
            if value is not None and name not in a:
                a[name] = value  # the first of duplicated attributes wins, as in browsers
        if tag in _BLOCK_TAGS:
            self._visible(_BLOCK_BREAK)
        if tag == "svg":
            self._svg_depth += 1
        elif tag == "html":
            lang = a.get("lang") or a.get("xml:lang")
            if lang:
                self._set_meta("lang", lang)
        elif tag == "title" and self._svg_depth == 0 and self._title is None:
            if "title" not in self.meta:
                self._title, self._title_len = [], 0
        elif tag == "meta":
            self._meta_tag(a)
        elif tag == "script":
            kind = a.get("type", "").strip().lower()
            self._ld_json, self._ld_len = ([], 0) if "ld+json" in kind else (None, 0)
        self._link_marks(tag, a)

    def _link_marks(self, tag: str, a: dict[str, str]) -> None:
        if tag == "a":
            self._close_anchor()
        rels = a.get("rel", "").lower().split()
        if tag in ("a", "link", "area") and any(r.rpartition(":")[2] == "license" for r in rels):
            self._mark(a.get("href"))
            if tag == "a":
                self._anchor, self._anchor_len = [], 0
        if "license" in a.get("itemprop", "").lower().split():
            self._mark(a.get("href") or a.get("content") or a.get("src"))
        for name, value in a.items():
            if name in _URL_ATTRS and any(n in value.lower() for n in _CC_NEEDLES):
                self._mark(value)

    def _meta_tag(self, a: dict[str, str]) -> None:
        content = a.get("content")
        if content is None:
            return
        keys = {a[k].strip().lower() for k in ("name", "property", "itemprop") if k in a}
        for key in keys:
            dotted = key.replace(":", ".")
            if dotted in _LICENSE_META:
                self._mark(content)
            elif dotted == "copyright" and normalize_license(content) != UNKNOWN:
                self._mark(content)  # copyright notices count only when they carry a mark
            if key in _META_KEYS:
                self._set_meta(_META_KEYS[key], content)
            elif key in _META_FALLBACK:
                self._set_meta(_META_FALLBACK[key], content)
        if a.get("name", "").strip().lower() == "author":
            self._set_meta("author", content)

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self._visible(_BLOCK_BREAK)
        if tag == "svg":
            self._svg_depth = max(0, self._svg_depth - 1)
        elif tag == "title":
            self._close_title()
        elif tag == "a":
            self._close_anchor()
        elif tag == "script" and self._ld_json is not None:
            for value in _ld_json_licenses("".join(self._ld_json)):
                self._mark(value)
            self._ld_json = None

    def _close_title(self) -> None:
        if self._title is not None:
            title = "".join(self._title).strip()
            if title:
                self._set_meta("title", title)
            self._title = None

    def _close_anchor(self) -> None:
        if self._anchor is not None:
            text = " ".join("".join(self._anchor).split())
            if normalize_license(text) != UNKNOWN:
                self._mark(text)
            self._anchor = None

    def handle_data(self, data: str) -> None:
        if self.cdata_elem in _RAW_TEXT:  # inside <script>, <style>, ...: not visible text
            if self._ld_json is not None and self._ld_len + len(data) <= _MAX_LD_JSON:
                self._ld_json.append(data)
                self._ld_len += len(data)
            return
        if self._title is not None:  # the page's name, not its text
            if self._title_len < _MAX_TITLE:
                piece = data[: _MAX_TITLE - self._title_len]
                self._title.append(piece)
                self._title_len += len(piece)
        elif self._statements < _MAX_STATEMENTS:
            self._visible(data.replace(_BLOCK_BREAK, " "))
        if self._anchor is not None and self._anchor_len < _MAX_ANCHOR:
            piece = data[: _MAX_ANCHOR - self._anchor_len]
            self._anchor.append(piece)
            self._anchor_len += len(piece)
        if not self._arr and len(data) >= _MIN_ARR_TEXT:
            words = " ".join(data.lower().split())
            if any(p in words for p in _ARR_PHRASES):
                self._arr = True
                self._mark(ARR_MARK)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        # `<![foo[` raises AssertionError in CPython's _markupbase: read it as a bogus comment.
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            return self.parse_bogus_comment(i)

    # -- driver

    def run(self, page: str) -> None:
        with contextlib.suppress(Exception):  # what was found before a failure is kept
            self.parse(page)
        self._close_anchor()
        self._close_title()
        with contextlib.suppress(Exception):
            self._scan_text(final=True)

    def parse(self, page: str) -> None:
        """Feed the whole page once, then step over constructs left open to its end."""
        budget = _REPARSE_FACTOR * len(page) + _REPARSE_EXTRA
        self.feed(page)
        while self.rawdata:
            tail, self.rawdata = self.rawdata, ""
            if self.cdata_elem is not None:
                self.clear_cdata_mode()  # unterminated <script>/<style>: read on as markup
            elif "<" not in tail:
                self.handle_data(html_lib.unescape(tail))  # trailing text held back
                return
            else:
                tail = tail[1:]  # a construct open to the end: take its '<' as text
                if ">" not in tail:  # no markup can end any more: the rest is text
                    self.handle_data(html_lib.unescape(tail))
                    return
            budget -= len(tail)
            if budget < 0:
                return
            self.feed(tail)


def scan_html(page: str) -> HtmlScan:
    """One pass over a page: `HtmlScan(marks=html_license_marks(page), meta=html_meta(page))`."""
    scanner = _PageScanner()
    if isinstance(page, str) and page:
        scanner.run(page)
    return HtmlScan(scanner.marks, scanner.meta)


def html_license_marks(page: str) -> list[str]:
    """Raw licence marks of a page, in document order, without duplicates.

    Sources: `<a|link|area rel="license" href>` (and the text of such a link when
    it names a licence), any href/src (or lazy-load data-src) pointing at a CC
    licence, deed or badge image, `<meta>` license/rights tags (name, property
    or itemprop; `copyright` only when it names a licence), `itemprop="license"`,
    `license` in JSON-LD, visible text saying "All rights reserved" (in a
    few languages) -> the mark "All rights reserved", and licence statements in
    the visible text (`text_license_marks`: "licensed under a Creative Commons
    Attribution 4.0 International License", "CC BY-SA 4.0", "dedicated to the
    public domain"), each as written. A bare "©" is not a mark.
    """
    return scan_html(page).marks


def html_meta(page: str) -> dict[str, str]:
    """Title and attribution fields found on a page (first occurrence of each).

    Keys, when present: `title` (the first `<title>` outside `<svg>`, surrounding
    whitespace stripped), `lang` (`<html lang>`), `author` (`<meta name=author>`),
    `og:title`, `og:description`, `og:audio`, `og:video` (`og:*:url` /
    `og:*:secure_url` as fallbacks). Values are verbatim apart from HTML entities.
    """
    return scan_html(page).meta
