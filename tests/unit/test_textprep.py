"""Text preparation: sentence splitting, TTS normalisation, checks, prepare, dedupe keys."""

from __future__ import annotations

import pickle
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speechmill.config import SynthConfig
from speechmill.core.text.normalize import get_normalizer
from speechmill.core.text.textprep import (
    Drop,
    Prepared,
    check_text,
    normalize_for_tts,
    number_to_words,
    ordinal_to_words,
    prepare,
    split_sentences,
    year_to_words,
)
from speechmill.schemas import Category

LIMITS = {"min_chars": 8, "max_chars": 400, "min_words": 2, "max_words": 60, "language": "en"}

# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "Mr. Okafor met Dr. Lindqvist at noon. They talked for an hour.",
            ["Mr. Okafor met Dr. Lindqvist at noon.", "They talked for an hour."],
        ),
        (
            "The bakery on St. Anne Road opened early. Nobody came.",
            ["The bakery on St. Anne Road opened early.", "Nobody came."],
        ),
        (
            "Bring fruit, e.g. Pears or plums. Also bring water, i.e. Two bottles.",
            ["Bring fruit, e.g. Pears or plums.", "Also bring water, i.e. Two bottles."],
        ),
        (
            "She packed socks, scarves, etc. The car was full by then.",
            ["She packed socks, scarves, etc.", "The car was full by then."],
        ),
        (
            "He moved to the U.S. The winters were long. The U.S. Navy hired him.",
            ["He moved to the U.S.", "The winters were long.", "The U.S. Navy hired him."],
        ),
        (
            "The ratio was 2.75 on average. It rose later.",
            ["The ratio was 2.75 on average.", "It rose later."],
        ),
        (
            "A letter from T. S. Marsh arrived. It was short.",
            ["A letter from T. S. Marsh arrived.", "It was short."],
        ),
        (
            "We waited... The bus never came. Well... maybe it did.",
            ["We waited...", "The bus never came.", "Well... maybe it did."],
        ),
        (
            'She shouted "Run!" Then the lights went out. (He hid.) Nobody moved.',
            ['She shouted "Run!"', "Then the lights went out.", "(He hid.)", "Nobody moved."],
        ),
        (
            "Is the gate open? Yes! Close it now.",
            ["Is the gate open?", "Yes!", "Close it now."],
        ),
        (
            '"Why?" she asked. He shrugged.',
            ['"Why?" she asked.', "He shrugged."],
        ),
        (
            "Take road No. 9 north. No. That road is closed.",
            ["Take road No. 9 north.", "No.", "That road is closed."],
        ),
        (
            "A first line\nwraps here.\n\nA new paragraph",
            ["A first line wraps here.", "A new paragraph"],
        ),
        ("今天下雨。我们在家\uff01", ["今天下雨。", "我们在家\uff01"]),
        ("   ", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]):
    assert split_sentences(text) == sentences


# --------------------------------------------------------------------------- number words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (15, "fifteen"),
        (40, "forty"),
        (99, "ninety-nine"),
        (100, "one hundred"),
        (305, "three hundred five"),
        (1000, "one thousand"),
        (1234, "one thousand two hundred thirty-four"),
        (2_000_017, "two million seventeen"),
        (-12, "minus twelve"),
        (10**21, "one sextillion"),
    ],
)
def test_number_to_words(n: int, words: str):
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (5, "fifth"),
        (8, "eighth"),
        (9, "ninth"),
        (12, "twelfth"),
        (20, "twentieth"),
        (22, "twenty-second"),
        (103, "one hundred third"),
        (1000, "one thousandth"),
    ],
)
def test_ordinal_to_words(n: int, words: str):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1999, "nineteen ninety-nine"),
        (2005, "two thousand five"),
        (2009, "two thousand nine"),
        (2000, "two thousand"),
        (2010, "twenty ten"),
        (2024, "twenty twenty-four"),
        (1900, "nineteen hundred"),
        (1905, "nineteen oh five"),
        (1066, "ten sixty-six"),
        (3000, "three thousand"),
    ],
)
def test_year_to_words(n: int, words: str):
    assert year_to_words(n) == words


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # cardinals, negatives, decimals
        ("The hall seats 1,250 people.", "The hall seats one thousand two hundred fifty people."),
        ("It fell to -7 overnight.", "It fell to minus seven overnight."),
        ("Pi is about 3.14 here.", "Pi is about three point one four here."),
        ("Add 0.5 cups.", "Add zero point five cups."),
        ("Agent 007 left.", "Agent zero zero seven left."),
        ("She wrote 42 letters.", "She wrote forty-two letters."),
        ("The firm had 1200 staff.", "The firm had one thousand two hundred staff."),
        # ordinals
        (
            "The 1st, 22nd and 103rd runners.",
            "The first, twenty-second and one hundred third runners.",
        ),
        # years and decades
        ("In 1999 the bridge opened.", "In nineteen ninety-nine the bridge opened."),
        ("By 2005 it had closed.", "By two thousand five it had closed."),
        ("Since 2010 it is a park.", "Since twenty ten it is a park."),
        ("It was built in 1900.", "It was built in nineteen hundred."),
        ("Music of the 1990s and the '60s.", "Music of the nineteen nineties and the sixties."),
        # money
        ("A pie costs $3.50 today.", "A pie costs three dollars and fifty cents today."),
        ("Tickets are £20 each.", "Tickets are twenty pounds each."),
        ("The fee is €1,000 now.", "The fee is one thousand euros now."),
        ("Gum costs 5¢ there.", "Gum costs five cents there."),
        ("It costs $1 or $0.99.", "It costs one dollar or ninety-nine cents."),
        ("They raised $2.5 billion.", "They raised two point five billion dollars."),
        ("A loss of $4m was reported.", "A loss of four million dollars was reported."),
        ("It sells for 30 EUR here.", "It sells for thirty euros here."),
        # percent
        ("Turnout was 64% this year.", "Turnout was sixty-four percent this year."),
        ("Prices rose 2.5% again.", "Prices rose two point five percent again."),
        # times
        ("The train leaves at 3:30 pm sharp.", "The train leaves at three thirty PM sharp."),
        ("Meet me at 14:05 by the gate.", "Meet me at fourteen oh five by the gate."),
        ("Lunch is at 1:00 today.", "Lunch is at one o'clock today."),
        ("The shop shuts at 9 p.m.", "The shop shuts at nine PM."),
        ("We land at 7:45 a.m. tomorrow.", "We land at seven forty-five AM tomorrow."),
        # dates
        (
            "It opened on 2024-03-05 at last.",
            "It opened on March fifth, twenty twenty-four at last.",
        ),
        ("Born March 5, 2024 in Leeds.", "Born March fifth, twenty twenty-four in Leeds."),
        (
            "Born on 5 March 2024 in Leeds.",
            "Born on the fifth of March, twenty twenty-four in Leeds.",
        ),
        ("Due 3/5/2024 at the office.", "Due March fifth, twenty twenty-four at the office."),
        (
            "Due 25/12/2024 at the office.",
            "Due December twenty-fifth, twenty twenty-four at the office.",
        ),
        ("See you Jan. 9 then.", "See you January ninth then."),
        # abbreviations
        ("Dr. Osei lives on Birch Dr.", "Doctor Osei lives on Birch Drive."),
        ("Mr. and Mrs. Patel met Ms. Gray.", "Mister and Missus Patel met Miz Gray."),
        (
            "We drove to St. Albans via Mill St. yesterday.",
            "We drove to Saint Albans via Mill Street yesterday.",
        ),
        ("It was cats vs. dogs.", "It was cats versus dogs."),
        ("Bring pens, pads, etc.", "Bring pens, pads, et cetera."),
        ("Use a fruit, e.g. a pear.", "Use a fruit, for example a pear."),
        ("The last one, i.e. the red one.", "The last one, that is the red one."),
        (
            "Gate No. 4 is approx. 2 km away.",
            "Gate number four is approximately two kilometers away.",
        ),
        # units
        (
            "The bag weighs 1 kg and the box 12 kg.",
            "The bag weighs one kilogram and the box twelve kilograms.",
        ),
        ("It is 5 cm wide and 1 ft long.", "It is five centimeters wide and one foot long."),
        ("Keep it under 70 mph.", "Keep it under seventy miles per hour."),
        ("Water boils at 100 °C.", "Water boils at one hundred degrees Celsius."),
        ("A 2.5 GB file.", "A two point five gigabytes file."),
        ("It is 3x faster.", "It is three times faster."),
        # symbols
        ("Salt & pepper.", "Salt and pepper."),
        ("Two + two = four.", "Two plus two equals four."),
        ("Meet @ the pier.", "Meet at the pier."),
        ("The #3 seed won.", "The number three seed won."),
        ("Love this #sunset view.", "Love this hashtag sunset view."),
        # fractions, ranges, phones, digits inside words
        ("Add 2 1/2 cups and 3/4 cup.", "Add two and a half cups and three quarters cup."),
        ("Between 10-20 guests came.", "Between ten to twenty guests came."),
        ("It ran 1990\u20131995.", "It ran nineteen ninety to nineteen ninety-five."),
        (
            "Call 555-867-5309 now.",
            "Call five five five, eight six seven, five three zero nine now.",
        ),
        ("An MP3 of COVID-19 news.", "An MP three of COVID-nineteen news."),
        ("Release 4.12.3 is out.", "Release four point twelve point three is out."),
        ("The 9:15-10:45 class.", "The nine fifteen to ten forty-five class."),
        ("About ~30 birds.", "About about thirty birds."),
        ("Opened in Aug. 1961.", "Opened in August nineteen sixty-one."),
        # quotes, dashes, whitespace, invisible characters, emoji, citations
        ("She said \u201chello\u201d \u2014 then left\u2026", 'She said "hello", then left...'),
        ("It\u2019s  a\u00a0 test\u200b case.", "It's a test case."),
        ("Great news \U0001f389 for all!", "Great news for all!"),
        ("The river is long.[12] It floods.", "The river is long. It floods."),
        ("Shop at Example.com today.", "Shop at Example dot com today."),
    ],
)
def test_normalize_for_tts_english(text: str, spoken: str):
    assert normalize_for_tts(text) == spoken


def test_normalized_english_has_no_digits():
    text = (
        "On 4/7/2031 at 10:15 pm, 3,456 fans paid $12.75 (about 17%) for 2nd-row seats, "
        "45 km from the 1880s hall No. 12; scores were 3-2 and 101-99, 1.5 kg and 8x."
    )
    spoken = normalize_for_tts(text)
    assert not re.search(r"\d", spoken), spoken


FUZZ_PIECES = [
    *"0123456789 .,:;/-$%#@&+='\"()[]!?",
    *"abcxyzAMPSTD",
    "\u2013",
    "\u2014",
    "\u2026",
    "\u00a3",
    "\u20ac",
    "\u00a2",
    "\u00b0C",
    "\u00bd",
    "\u00a0",
    "\u200b",
    "\U0001f600",
    "\u043a",
    "Mr. ",
    "Dr ",
    " St. ",
    "e.g. ",
    "No. ",
    "etc.",
    "U.S. ",
    " pm",
    "a.m.",
    "March ",
    "1999",
    "1,000",
    "3.14",
    "'90s",
    "km",
    "bn",
]


@given(st.lists(st.sampled_from(FUZZ_PIECES), max_size=30).map("".join) | st.text(max_size=40))
def test_normalize_and_prepare_never_crash_and_leave_no_ascii_digits(text: str):
    spoken = normalize_for_tts(text)
    assert not re.search(r"[0-9]", spoken), spoken
    out = prepare(text, SynthConfig())
    assert out and all(isinstance(p, (Prepared, Drop)) for p in out)


def test_long_pathological_lines_take_linear_time():
    limits = {**LIMITS, "max_chars": 10**6, "max_words": 10**6}
    for text in ("a" * 40000, "1" * 40000, "1-" * 20000, "[a" * 20000, "." * 40000, "a@" * 20000):
        start = time.perf_counter()
        check_text(text, **limits)
        normalize_for_tts(text)
        split_sentences(text)
        assert time.perf_counter() - start < 3.0, text[:10]


def test_results_pickle_for_beam():
    out = prepare("It costs $5. Tiny. <i>x</i> here.", SynthConfig())
    assert pickle.loads(pickle.dumps(out)) == out


def test_non_english_is_only_whitespace_normalised():
    text = "  Am 3. Mai 2024   kostet es 5 €\u00a0&  mehr.  "
    assert normalize_for_tts(text, "de") == "Am 3. Mai 2024 kostet es 5 € & mehr."
    assert normalize_for_tts("It costs $5.", "en-US") == "It costs five dollars."


# --------------------------------------------------------------------------- checks


def test_a_plain_sentence_passes():
    assert check_text("The ferry left the harbour at dawn.", **LIMITS) is None
    assert check_text("Caf\u00e9 cr\u00e8me and na\u00efve r\u00e9sum\u00e9s.", **LIMITS) is None
    assert check_text("Tabs\tand\nnewlines are fine.", **LIMITS) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        (" \t\n ", "empty"),
        ("A bell\x07 rang out twice.", "control character U+0007"),
        ("A bell\x1b[0m rang out.", "control character U+001B"),
        ("Lost \ufffd characters in this line.", "wrong encoding"),
        ("A private \ue000 glyph in text.", "unprintable character U+E000"),
        ("\U0001f600\U0001f389\U0001f44d", "no letters or digits"),
        ("... !!! ??? ---", "no letters or digits"),
        ("Read the <em>small</em> print.", "HTML/XML tag"),
        ("A line break<br/> inside text.", "HTML/XML tag"),
        ("Fish &amp; chips for two.", "HTML entity"),
        ("See [the guide](docs/guide.md) first.", "markdown link"),
        ("A picture ![cat](cat.png) here.", "markdown link or image"),
        ("## Chapter one begins", "markdown heading"),
        ("The [[Nile]] is a long river.", "wiki link"),
        ("Born {{birth date|1950}} in Rome.", "wiki template"),
        ("The '''capital''' city is large.", "wiki bold"),
        ("== Early life ==", "wiki heading"),
        ("Run ```ls -la``` in a shell.", "code fence"),
        ("The value \\emph{is} large.", "LaTeX"),
        ("Details at https://example.org/page today.", "a URL"),
        ("Visit www.example.org for more.", "a URL"),
        ("Write to ana.lopez@example.org soon.", "e-mail address"),
        ("The word \u043a\u043e\u0442 means cat.", "Cyrillic"),
        ("He wrote \u6c34 on the board.", "CJK"),
        ("The sign said \u0633\u0644\u0627\u0645 in ink.", "Arabic"),
        ("Tiny", "4 characters long, under synth.min_chars (8)"),
        ("Unbelievably", "1 word, under synth.min_words (2)"),
    ],
)
def test_check_text_rejects(text: str, needle: str):
    problem = check_text(text, **LIMITS)
    assert problem is not None, text
    assert problem.category == Category.BAD_TEXT
    assert needle in problem.reason
    assert "\n" not in problem.reason


def test_over_long_text_names_its_length_and_the_limit():
    problem = check_text("x" * 5000, **LIMITS)
    assert problem is not None
    assert "5000 characters" in problem.reason and "synth.max_chars (400)" in problem.reason
    assert problem.detail is not None and len(problem.detail) <= 200
    words = check_text("word " * 61, **{**LIMITS, "max_chars": 1000})
    assert words is not None and "61 words, over synth.max_words (60)" in words.reason


def test_scripts_for_other_languages():
    kw = {**LIMITS, "min_words": 1}
    ru = {**kw, "language": "ru"}
    assert check_text("\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", **ru) is None
    # Latin is always allowed beside the language's script (names, brands)
    assert check_text("\u041c\u043e\u0439 iPhone \u0442\u0443\u0442.", **ru) is None
    greek_in_ru = check_text("\u041c\u0438\u0440 \u03b1\u03b2\u03b3 \u0442\u0443\u0442.", **ru)
    assert greek_in_ru is not None and "Greek" in greek_in_ru.reason
    # unknown language: Latin plus any one other script, but not two
    xx = {**kw, "language": "xx"}
    assert check_text("\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0 friend", **xx) is None
    mixed = check_text("\u043a\u043e\u0442 \u6c34 here", **xx)
    assert mixed is not None and "several scripts" in mixed.reason
    # signs that look like letters are not a script
    assert check_text("A 5 \u00b5m gap in the wall.", **LIMITS) is None


# --------------------------------------------------------------------------- prepare


def test_prepare_splits_normalises_and_checks_each_sentence():
    cfg = SynthConfig()
    out = prepare(
        "Dr. Ruiz paid $40 on 3/5/2024. Ok. See <b>this</b> now. Fine, thanks a lot!", cfg
    )
    assert out == [
        Prepared(
            "Dr. Ruiz paid $40 on 3/5/2024.",
            "Doctor Ruiz paid forty dollars on March fifth, twenty twenty-four.",
        ),
        Drop(
            Category.BAD_TEXT, "spoken form is 3 characters long, under synth.min_chars (8)", "Ok."
        ),
        out[2],
        Prepared("Fine, thanks a lot!", "Fine, thanks a lot!"),
    ]
    assert isinstance(out[2], Drop) and "markup" in out[2].reason


def test_prepare_without_sentence_splitting_keeps_the_text_whole():
    cfg = SynthConfig(split_sentences=False)
    assert prepare("It rained. Then   it\nstopped.", cfg) == [
        Prepared("It rained. Then it stopped.", "It rained. Then it stopped.")
    ]


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_prepare_never_returns_an_empty_list(text: str):
    assert prepare(text, SynthConfig()) == [Drop(Category.BAD_TEXT, "the text is empty")]


def test_long_sentences_are_split_at_clause_boundaries():
    cfg = SynthConfig(max_chars=80, min_chars=2, min_words=1)
    clauses = [f"the {n} lantern swung in the wind" for n in ("red", "blue", "green", "grey")]
    text = "At night " + "; ".join(clauses[:2]) + " \u2014 " + ", ".join(clauses[2:]) + "."
    assert len(text) > 80
    out = prepare(text, cfg)
    # cut at the dash (the strongest boundary that makes pieces fit), clauses joined
    # back greedily up to the limit, each piece a slice of the sentence
    assert out == [
        Prepared(
            "At night the red lantern swung in the wind; the blue lantern swung in the wind",
            "At night the red lantern swung in the wind; the blue lantern swung in the wind",
        ),
        Prepared(
            "the green lantern swung in the wind, the grey lantern swung in the wind.",
            "the green lantern swung in the wind, the grey lantern swung in the wind.",
        ),
    ]
    smaller = prepare(text, SynthConfig(max_chars=50, min_chars=2, min_words=1))
    assert [p.raw for p in smaller if isinstance(p, Prepared)] == [
        "At night the red lantern swung in the wind",
        "the blue lantern swung in the wind",
        "the green lantern swung in the wind",
        "the grey lantern swung in the wind.",
    ]


def test_strongest_boundary_is_preferred():
    cfg = SynthConfig(max_chars=60, min_chars=2, min_words=1)
    text = "The tide came in, slowly, very slowly; the boats rose, one by one, with it."
    out = prepare(text, cfg)
    assert [p.raw for p in out if isinstance(p, Prepared)] == [
        "The tide came in, slowly, very slowly",
        "the boats rose, one by one, with it.",
    ]


def test_unsplittable_long_sentence_is_rejected_with_its_length():
    out = prepare("z" * 5000, SynthConfig())
    assert len(out) == 1 and isinstance(out[0], Drop)
    assert "5000 characters" in out[0].reason and "synth.max_chars (400)" in out[0].reason
    assert "no clause boundary" in out[0].reason


def test_limits_apply_to_the_spoken_form():
    cfg = SynthConfig(max_chars=30, min_chars=2, min_words=1)
    # 16 characters as written, but the spoken number is long
    out = prepare("It cost $987,654.", cfg)
    assert len(out) == 1 and isinstance(out[0], Drop)
    assert "over synth.max_chars (30)" in out[0].reason


def test_prepare_uses_the_language():
    cfg = SynthConfig(language="de", min_words=1)
    assert prepare("Es kostet 5 Euro.", cfg) == [Prepared("Es kostet 5 Euro.", "Es kostet 5 Euro.")]


# --------------------------------------------------------------------------- dedupe


def test_texts_that_read_the_same_get_the_same_text_id():
    from speechmill.core.synth.synthplan import text_id

    norm = get_normalizer("whisper-english")
    a = normalize_for_tts("The fee is $3.50, OK?")
    b = normalize_for_tts("the fee is   3 dollars and 50 cents ok")
    c = normalize_for_tts("The fee is $4.50, OK?")
    assert text_id(norm(a)) == text_id(norm(b))
    assert text_id(norm(a)) != text_id(norm(c))
