"""Report sections: parse MIMIC-CXR free-text reports, and pick the text to classify.

A MIMIC-CXR report is a "FINAL REPORT" header followed by sections whose headings are
upper-case words ending in a colon at the start of a line (" FINDINGS:",
" IMPRESSION:", " INDICATION:", ...). The classifier reads the findings, the
impression or both; when a report lacks the chosen section it falls back to the other
one, then to the whole body (header lines stripped), so no report is lost for want
of a heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dpsweep.data.types import Sections

# A heading: at a line start, an upper-case letter, then upper-case words (with a few
# punctuation marks used in MIMIC headings), then a colon.
_HEADING = re.compile(r"^[ \t]*([A-Z][A-Z ()/&,'-]{0,58}[A-Z)])[ \t]*:", re.MULTILINE)
_HEADER_LINE = re.compile(r"^[ \t]*(FINAL REPORT|PRELIMINARY REPORT)[ \t]*$", re.MULTILINE)

FINDINGS_HEADINGS = frozenset({"FINDINGS", "FINDING", "FINDINGS AND IMPRESSION"})
IMPRESSION_HEADINGS = frozenset({"IMPRESSION", "IMPRESSIONS", "CONCLUSION", "CONCLUSIONS"})


@dataclass(frozen=True)
class ReportSections:
    """The parts of one report the classifier may read (whitespace-normalised, maybe empty)."""

    findings: str
    impression: str
    body: str


def normalize_space(text: str) -> str:
    """Collapse runs of whitespace (report line wraps, blank lines) into single spaces."""
    return " ".join(text.split())


def strip_header(report: str) -> str:
    """The report after its last "FINAL REPORT" header line (the whole text if it has none)."""
    matches = list(_HEADER_LINE.finditer(report))
    return report[matches[-1].end() :] if matches else report


def parse_report(report: str) -> ReportSections:
    """Split a MIMIC-CXR report into findings, impression and header-less body.

    Repeated sections of one kind (e.g. FINDINGS in an addendum) are joined in order.
    """
    body = strip_header(report)
    findings, impression = _findings_and_impression(body)
    return ReportSections(findings=findings, impression=impression, body=normalize_space(body))


def report_text(report: str, sections: Sections) -> str:
    """`choose_text(sections, ...)` of `parse_report(report)`, normalising only what it uses.

    The same text, faster: readers call this once per report (227k times for MIMIC-CXR).
    """
    body = strip_header(report)
    findings, impression = _findings_and_impression(body)
    return choose_text(sections, findings=findings, impression=impression) or normalize_space(body)


def _findings_and_impression(body: str) -> tuple[str, str]:
    """The findings and impression sections' text (repeats joined), whitespace-normalised."""
    findings: list[str] = []
    impression: list[str] = []
    headings = list(_HEADING.finditer(body))
    for i, match in enumerate(headings):
        name = match.group(1)
        if "  " in name or "\t" in name:
            name = normalize_space(name)
        kept = findings if name in FINDINGS_HEADINGS else impression if name in IMPRESSION_HEADINGS else None
        if kept is None:
            continue  # other sections are never classified: no need to normalise them
        end = headings[i + 1].start() if i + 1 < len(headings) else len(body)
        content = normalize_space(body[match.end() : end])
        if content:
            kept.append(content)
    return " ".join(findings), " ".join(impression)


def choose_text(sections: Sections, *, findings: str, impression: str, fallback: str = "") -> str:
    """The text to classify: the chosen section(s), else the other one, else `fallback`.

    "both" joins findings and impression with a newline; with only one present it is
    that one.
    """
    findings, impression = findings.strip(), impression.strip()
    if sections == "findings":
        order = (findings, impression)
    elif sections == "impression":
        order = (impression, findings)
    else:
        joined = "\n".join(part for part in (findings, impression) if part)
        order = (joined,)
    for text in order:
        if text:
            return text
    return fallback.strip()
