"""Shared machinery of the synthetic report writers: templates, slots, sentence lists.

Sentences are drawn from small pools of templates whose {slots} (side, lobe, severity,
size, ...) are filled at random, so the same finding reads differently from report to
report while its label stays a fixed function of the words used.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import numpy as np

SLOTS: dict[str, tuple[str, ...]] = {
    "side": ("left", "right"),
    "sides": ("left", "right", "bilateral"),
    "sev": ("small", "moderate", "large"),
    "deg": ("mild", "moderate", "severe"),
    "degly": ("mildly", "moderately", "severely"),
    "zone": ("upper", "mid", "lower"),
    "lobe": (
        "right upper lobe",
        "right middle lobe",
        "right lower lobe",
        "left upper lobe",
        "left lower lobe",
        "lingula",
    ),
    "rib": ("fourth", "fifth", "sixth", "seventh", "eighth", "ninth"),
    "cm": ("0.8", "1.2", "1.5", "2.1", "2.8", "3.4"),
    "mm": ("4", "5", "6", "7", "8", "9", "11", "14"),
    "tubecm": ("3", "4", "5", "6"),
}
_SLOT = re.compile(r"\{(\w+)\}")


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


def fill(template: str, rng: np.random.Generator, memory: dict[str, str] | None = None) -> str:
    """Fill each {slot} and capitalise the start. One value per slot name ({Slot}
    capitalises it); pass the same `memory` to keep a finding's side and size when it is
    mentioned again (findings, then impression)."""
    chosen: dict[str, str] = {} if memory is None else memory

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        key = name.lower()
        if key not in chosen:
            chosen[key] = pick(rng, SLOTS[key])
        return chosen[key].capitalize() if name[0].isupper() else chosen[key]

    text = _SLOT.sub(value, template)
    return text[0].upper() + text[1:]


def say(
    rng: np.random.Generator, templates: Sequence[str], memory: dict[str, str] | None = None
) -> str:
    """A filled sentence from a pool of templates."""
    return fill(pick(rng, templates), rng, memory)


def join_nouns(nouns: Sequence[str]) -> str:
    """ "a", "a or b", "a, b, or c" for negation lists."""
    if len(nouns) <= 2:
        return " or ".join(nouns)
    return ", ".join(nouns[:-1]) + ", or " + nouns[-1]


def negation_sentences(
    rng: np.random.Generator, nouns: Sequence[str], templates: Sequence[str]
) -> list[str]:
    """Negated findings grouped 1-3 to a sentence ("No pleural effusion or pneumothorax.")."""
    nouns = [nouns[i] for i in rng.permutation(len(nouns))]
    out: list[str] = []
    while nouns:
        k = min(len(nouns), int(rng.integers(1, 4)))
        out.append(fill(pick(rng, templates).format(x=join_nouns(nouns[:k])), rng))
        nouns = nouns[k:]
    return out


def wrap_section(sentences: Sequence[str], *, width: int = 76) -> str:
    """Sentences as a MIMIC-style paragraph: hard-wrapped lines, each led by a space."""
    lines = textwrap.wrap("  ".join(sentences), width=width) or [""]
    return "\n".join(" " + line for line in lines)


def hex_id(rng: np.random.Generator) -> str:
    """A DICOM-like id: five groups of eight hex digits joined by dashes."""
    words = rng.integers(0, 2**32, size=5, dtype=np.uint64)
    return "-".join(f"{int(w):08x}" for w in words)


def unique_ids(rng: np.random.Generator, n: int, *, low: int, high: int) -> list[int]:
    """n distinct random integers in [low, high), in the order drawn."""
    seen: set[int] = set()
    out: list[int] = []
    while len(out) < n:
        for x in rng.integers(low, high, size=n - len(out)).tolist():
            if x not in seen:
                seen.add(x)
                out.append(x)
    return out


def assign_parts(rng: np.random.Generator, n_groups: int, fractions: Sequence[float]) -> np.ndarray:
    """Part index per group (patient): ~fractions of groups each, at least one in every
    part after the first when there are enough groups."""
    order = rng.permutation(n_groups)
    parts = np.zeros(n_groups, dtype=np.int64)
    start = 0
    for part in range(len(fractions) - 1, 0, -1):
        size = max(1, round(fractions[part] * n_groups)) if n_groups >= len(fractions) else 0
        parts[order[start : start + size]] = part
        start += size
    return parts
