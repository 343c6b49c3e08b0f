"""The Unicode checks every stored string goes through, and the fault hook's syntax."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speechmill import faults
from speechmill.core.text.unicode import clean, problem, safe_repr


def test_problem_names_surrogates_and_noncharacters() -> None:
    assert problem("fine text, ünïcode and emoji 😀") is None
    assert "lone surrogate (U+D800 at position 2)" in (problem("ab\ud800") or "")
    assert "noncharacter (U+FFFE" in (problem("x\ufffe") or "")
    assert "noncharacter (U+10FFFF" in (problem("\U0010ffff") or "")
    assert "noncharacter (U+FDD0" in (problem("\ufdd0") or "")


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)))
def test_clean_always_makes_a_string_utf8_encodable(text: str) -> None:
    out = clean(text)
    out.encode("utf-8")
    assert problem(out) is None and len(out) == len(text)
    if problem(text) is None:
        assert out == text


def test_safe_repr_is_ascii_and_bounded() -> None:
    r = safe_repr("x" * 1000 + "\ud800")
    assert r.isascii() and len(r) <= 300


def test_fault_spec_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV, "no.such.point")
    with pytest.raises(ValueError, match="expected <point>"):
        faults.fault_point("decode")
    faults.reset()
    monkeypatch.setenv(faults.ENV, "decode@2")
    faults.fault_point("vad")  # other points pass
    faults.fault_point("decode")
    faults.fault_point("decode")
    with pytest.raises(faults.FaultInjected):
        faults.fault_point("decode")
    faults.reset()
