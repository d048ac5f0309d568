"""MR contrast from the DICOM header: a small rule table, to cross-check the image classifier.

Series names and headers are unreliable across sites (the reason an image classifier exists),
so the header's guess is shown beside the model's, never instead of it. The acquisition physics
(TR, TE, TI) is tried before the names; the first matching rule decides, every matching rule is
reported. A contrast agent (``ContrastBolusAgent`` or a post-contrast series name) turns T1 into
T1C+. Names follow the 44-class dataset: ``T1``, ``T1C+``, ``T2``, ``FLAIR``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Header = Mapping[str, Any]

NO_AGENT = {"", "NONE", "NO", "N/A", "NA", "0"}
POST_WORDS = re.compile(r"post|gad|\bgd\b|\+c\b|\bc\+|contrast|\bce\b", re.IGNORECASE)


def _number(header: Header, key: str) -> float | None:
    value = header.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _names(header: Header) -> str:
    return " ".join(str(header.get(k, "")) for k in ("SeriesDescription", "ProtocolName"))


def _physics(tr: tuple[float, float], te: tuple[float, float], ti: tuple[float, float] | None):
    """A test on TR, TE (and TI when given) ranges in ms, [low, high)."""

    def test(h: Header) -> bool:
        values = [_number(h, "RepetitionTime"), _number(h, "EchoTime")]
        ranges = [tr, te]
        if ti is not None:
            values.append(_number(h, "InversionTime"))
            ranges.append(ti)
        return all(
            v is not None and lo <= v < hi for v, (lo, hi) in zip(values, ranges, strict=True)
        )

    return test


def _named(pattern: str) -> Callable[[Header], bool]:
    regex = re.compile(pattern, re.IGNORECASE)
    return lambda h: bool(regex.search(_names(h)))


@dataclass(frozen=True)
class HeaderRule:
    contrast: str  # T1 | T2 | FLAIR (T1C+ comes from the agent)
    why: str
    test: Callable[[Header], bool]


INF = float("inf")
HEADER_RULES: tuple[HeaderRule, ...] = (
    HeaderRule(
        "FLAIR",
        "long TR and TE with inversion (TR ≥ 6000, TE ≥ 80, TI ≥ 1500 ms)",
        _physics((6000, INF), (80, INF), (1500, INF)),
    ),
    HeaderRule(
        "FLAIR",
        "very long TR with long TE (TR ≥ 6000, TE ≥ 80 ms)",
        _physics((6000, INF), (80, INF), None),
    ),
    HeaderRule(
        "T1",
        "inversion-prepared short-TE sequence (TI < 1500, TE < 15 ms), an MPRAGE",
        _physics((0, INF), (0, 15), (1, 1500)),
    ),
    HeaderRule(
        "T2", "long TR and TE (TR ≥ 2000, TE ≥ 60 ms)", _physics((2000, INF), (60, INF), None)
    ),
    HeaderRule("T1", "short TR and TE (TR < 1000, TE < 30 ms)", _physics((0, 1000), (0, 30), None)),
    HeaderRule("FLAIR", "series name says FLAIR (or dark fluid)", _named(r"flair|dark.?fluid")),
    HeaderRule("T2", "series name says T2", _named(r"t2(?!\*)")),
    HeaderRule(
        "T1",
        "series name says T1 (or MPRAGE, SPGR, BRAVO, TFE)",
        _named(r"t1|mp-?rage|spgr|bravo|\btfe\b"),
    ),
)


def agent_given(header: Header) -> str | None:
    """Why the header says a contrast agent was given, or ``None``."""
    agent = str(header.get("ContrastBolusAgent", "")).strip()
    if agent.upper() not in NO_AGENT:
        return f"contrast agent recorded ({agent})"
    if POST_WORDS.search(_names(header)):
        return "series name says post-contrast"
    return None


def header_contrast(header: Header) -> dict[str, Any] | None:
    """The header's contrast guess with its reasons; ``None`` when no rule applies."""
    hits = [rule for rule in HEADER_RULES if rule.test(header)]
    if not hits:
        return None
    contrast = hits[0].contrast
    agent = agent_given(header)
    if contrast == "T1" and agent:
        contrast = "T1C+"
    return {
        "contrast": contrast,
        "rule": hits[0].why,
        "contrast_agent": agent,
        "other_rules": [f"{r.contrast}: {r.why}" for r in hits[1:]],
        "values_ms": {
            k: _number(header, k) for k in ("RepetitionTime", "EchoTime", "InversionTime")
        },
    }


def canonical(label: str) -> str | None:
    """A class name (the 44-class suffixes or a site's own: ``T1 post``, ``T2 FLAIR post``) in
    the header rules' names, ``None`` when it names none of them."""
    text = label.lower()
    if "flair" in text:
        return "FLAIR"
    if re.search(r"t2", text):
        return "T2"
    if re.search(r"t1", text):
        return "T1C+" if POST_WORDS.search(text) or "c+" in text else "T1"
    return None
