"""Synthetic MIMIC-CXR: reports, CheXpert labels and split in the real on-disk layout.

Each study gets latent findings (correlated: edema with cardiomegaly and effusion,
consolidation with pneumonia, devices in acutely ill patients), which are then written
as sentences. The label CSV records exactly what the text says: 1.0 for a stated
finding, -1.0 for a hedged one, 0.0 for a negated one, blank when not mentioned, and
No Finding = 1.0 when no pathology is stated or hedged (the CheXpert rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsweep.data import synth_mimic_phrases as ph
from dpsweep.data.csvio import write_table
from dpsweep.data.labels import CHEXPERT_LABELS
from dpsweep.data.mimic_cxr import LABELS_STEM, SPLIT_STEM
from dpsweep.data.synth_text import (
    assign_parts,
    fill,
    hex_id,
    negation_sentences,
    pick,
    say,
    unique_ids,
    wrap_section,
)

Status = dict[str, float]  # label -> 1.0 / -1.0 / 0.0; absent = not mentioned
Memory = dict[str, dict[str, str]]  # label -> slot values used (same side/size when repeated)
PATHOLOGIES = tuple(x for x in CHEXPERT_LABELS if x not in ("No Finding", "Support Devices"))
LUNG_ORDER = (
    "Lung Opacity",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Edema",
    "Lung Lesion",
    "Pleural Effusion",
    "Pneumothorax",
    "Pleural Other",
)
HEART_ORDER = ("Cardiomegaly", "Enlarged Cardiomediastinum")
SPLITS = ("train", "validate", "test")
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)
HEADER = "                                 FINAL REPORT"


@dataclass(frozen=True)
class Study:
    subject: int
    study: int
    split: str
    labels: Status
    text: str


def sample_findings(rng: np.random.Generator, *, acute: bool) -> Status:
    """Latent status of every label for one study (before deciding what the text says)."""
    status: Status = {}

    def draw(label: str, pos: float, unc: float, neg: float) -> bool:
        u = rng.random()
        if u < pos:
            status[label] = 1.0
        elif u < pos + unc:
            status[label] = -1.0
        elif rng.random() < neg:
            status[label] = 0.0
        return status.get(label) == 1.0

    a = acute
    draw("Support Devices", 0.55 if a else 0.08, 0.0, 0.0)
    cardiomegaly = draw("Cardiomegaly", 0.25 if a else 0.12, 0.03, 0.55)
    edema = draw("Edema", 0.40 if cardiomegaly else (0.12 if a else 0.03), 0.04, 0.35)
    effusion = draw("Pleural Effusion", 0.60 if edema else (0.22 if a else 0.07), 0.04, 0.80)
    draw("Atelectasis", 0.45 if effusion else (0.18 if a else 0.08), 0.04, 0.10)
    pneumonia = draw("Pneumonia", 0.08 if a else 0.03, 0.07 if a else 0.04, 0.20)
    consolidation = draw("Consolidation", 0.60 if pneumonia else 0.03, 0.02, 0.65)
    draw("Lung Opacity", 0.35 if consolidation else (0.12 if a else 0.08), 0.02, 0.10)
    draw("Enlarged Cardiomediastinum", 0.03, 0.015, 0.50)
    draw("Lung Lesion", 0.03, 0.01, 0.05)
    draw("Fracture", 0.02, 0.005, 0.15)
    draw("Pleural Other", 0.015, 0.004, 0.03)
    draw("Pneumothorax", 0.04 if a else 0.012, 0.005, 0.75)
    return status


def _stated(
    rng: np.random.Generator,
    status: Status,
    order: Sequence[str],
    said: Status,
    memory: Memory,
    *,
    short: bool,
) -> list[str]:
    """Sentences for the positive and hedged labels in `order` (pairs said together at times)."""
    out: list[str] = []
    done: set[str] = set()
    for label in order:
        value = status.get(label)
        if label in done or value not in (1.0, -1.0):
            continue
        for pair, (full, brief) in ph.COMBINED.items():
            other = pair[1] if pair[0] == label else pair[0] if pair[1] == label else None
            if (
                other
                and other in order
                and other not in done
                and status.get(other) == 1.0
                and value == 1.0
                and rng.random() < 0.6
            ):
                memory[other] = memory.setdefault(label, {})
                out.append(say(rng, brief if short else full, memory[label]))
                done.update(pair)
                said.update({label: 1.0, other: 1.0})
                break
        else:
            phrases = ph.PHRASES[label]
            pool = (
                (phrases.pos_short if short else phrases.pos)
                if value == 1.0
                else (phrases.unc_short if short else phrases.unc)
            )
            out.append(say(rng, pool, memory.setdefault(label, {})))
            done.add(label)
            said[label] = value
    return out


def _negations(rng: np.random.Generator, status: Status, said: Status, *, keep: float) -> list[str]:
    """ "No x or y." sentences for negated lung/pleura labels (each kept with prob. `keep`)."""
    labels = [x for x in LUNG_ORDER if status.get(x) == 0.0 and rng.random() < keep]
    said.update({x: 0.0 for x in labels})
    nouns = [pick(rng, ph.PHRASES[x].neg_nouns) for x in labels]
    return negation_sentences(rng, nouns, ph.NEGATION) if nouns else []


def _devices(rng: np.random.Generator, status: Status, said: Status, *, short: bool) -> list[str]:
    if status.get("Support Devices") != 1.0:
        return []
    said["Support Devices"] = 1.0
    phrases = ph.PHRASES["Support Devices"]
    if short:
        return [say(rng, phrases.pos_short)]
    k = 1 + int(rng.random() < 0.4)
    return [fill(phrases.pos[i], rng) for i in rng.choice(len(phrases.pos), size=k, replace=False)]


def _heart(rng: np.random.Generator, status: Status, said: Status, memory: Memory) -> list[str]:
    out = _stated(rng, status, HEART_ORDER, said, memory, short=False)
    negated = [x for x in HEART_ORDER if status.get(x) == 0.0]
    said.update({x: 0.0 for x in negated})
    if len(negated) == 2 and rng.random() < 0.5:
        return out + [say(rng, ph.HEART_AND_MEDIASTINUM_NORMAL)]
    return out + [say(rng, ph.PHRASES[x].neg_sentences) for x in negated]


def _bones(rng: np.random.Generator, status: Status, said: Status, memory: Memory) -> list[str]:
    out = _stated(rng, status, ("Fracture",), said, memory, short=False)
    if status.get("Fracture") == 0.0:
        said["Fracture"] = 0.0
        out.append(say(rng, ph.PHRASES["Fracture"].neg_sentences))
    if rng.random() < 0.2:
        out.append(say(rng, ph.FILLER))
    return out


def render(
    rng: np.random.Generator, status: Status, *, impression_only: bool
) -> tuple[list[str] | None, list[str], Status]:
    """Findings sentences (None when the report has none), impression sentences, and the
    labels the text states."""
    said: Status = {}
    memory: Memory = {}
    abnormal = any(status.get(x) in (1.0, -1.0) for x in PATHOLOGIES)
    findings = None
    if not impression_only:
        lungs = _stated(rng, status, LUNG_ORDER, said, memory, short=False)
        lungs += _negations(rng, status, said, keep=1.0)
        heart = _heart(rng, status, said, memory)
        middle = heart + lungs if rng.random() < 0.4 else lungs + heart
        findings = (
            _devices(rng, status, said, short=False) + middle + _bones(rng, status, said, memory)
        )
    if abnormal:
        impression = _stated(
            rng, status, (*HEART_ORDER, *LUNG_ORDER, "Fracture"), said, memory, short=True
        )
        if impression_only or rng.random() < 0.4:
            impression += _devices(rng, status, said, short=True)
        impression += _negations(rng, status, said, keep=0.6 if impression_only else 0.15)
    else:
        impression = []
        if impression_only or rng.random() < 0.5:
            impression += _devices(rng, status, said, short=True)
        impression.append(say(rng, ph.NORMAL_IMPRESSION))
    if not any(said.get(x) in (1.0, -1.0) for x in PATHOLOGIES):
        said["No Finding"] = 1.0
    return findings, impression, said


def report_text(rng: np.random.Generator, findings: list[str] | None, impression: list[str]) -> str:
    """The whole report file: header lines, EXAMINATION/INDICATION/..., FINDINGS, IMPRESSION."""
    history = "HISTORY" if rng.random() < 0.2 else "INDICATION"
    lines = [
        HEADER,
        f" EXAMINATION:  {pick(rng, ph.EXAMINATION)}",
        " ",
        f" {history}:  ___-year-old {pick(rng, ('man', 'woman'))} with "
        f"{pick(rng, ph.COMPLAINT)}.  // {pick(rng, ph.QUESTION)}",
        " ",
    ]
    if rng.random() < 0.6:
        lines += [f" TECHNIQUE:  {pick(rng, ('Chest PA and lateral', 'Portable AP chest'))}", " "]
    lines += [f" COMPARISON:  {pick(rng, ph.COMPARISON)}", " "]
    if findings is not None:
        lines += [" FINDINGS:", " ", wrap_section(findings), " "]
    lines += [" IMPRESSION:", " ", wrap_section(impression)]
    if rng.random() < 0.05:
        lines += [" ", f" NOTIFICATION:  {pick(rng, ph.NOTIFICATION)}"]
    if rng.random() < 0.03:
        lines += [" ", f" ADDENDUM:  {pick(rng, ph.ADDENDUM)}"]
    return "\n".join(lines) + "\n"


def _studies_per_patient(rng: np.random.Generator, n: int) -> list[int]:
    """Studies of each patient (mean ~3, at most 10; small n still gives >= 4 patients)."""
    cap = max(1, min(10, n // 4))
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(min(rng.geometric(0.35), cap)))
    sizes[-1] -= sum(sizes) - n
    return sizes


def make_studies(n: int, seed: int) -> list[Study]:
    """n synthetic studies of several studies per patient, patients split ~90/5/5."""
    rng = np.random.default_rng(seed)
    sizes = _studies_per_patient(rng, n)
    subjects = unique_ids(rng, len(sizes), low=10_000_000, high=20_000_000)
    study_ids = iter(unique_ids(rng, n, low=50_000_000, high=60_000_000))
    parts = assign_parts(rng, len(sizes), SPLIT_FRACTIONS)
    studies: list[Study] = []
    for subject, size, part in zip(subjects, sizes, parts, strict=True):
        acute = rng.random() < 0.35
        for _ in range(size):
            status = sample_findings(rng, acute=acute if rng.random() > 0.2 else not acute)
            findings, impression, said = render(rng, status, impression_only=rng.random() < 0.15)
            studies.append(
                Study(
                    subject=subject,
                    study=next(study_ids),
                    split=SPLITS[part],
                    labels=said,
                    text=report_text(rng, findings, impression),
                )
            )
    return sorted(studies, key=lambda s: (s.subject, s.study))


def write_mimic_cxr(out: Path, *, n: int, seed: int) -> Path:
    """Write n synthetic studies under `out` in the MIMIC-CXR layout; return `out`."""
    studies = make_studies(n, seed)
    rng = np.random.default_rng([seed, 1])
    for s in studies:
        folder = out / "files" / f"p{str(s.subject)[:2]}" / f"p{s.subject}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"s{s.study}.txt").write_text(s.text, encoding="utf-8")
    write_table(
        out / f"{LABELS_STEM}.csv.gz",
        ("subject_id", "study_id", *CHEXPERT_LABELS),
        ([s.subject, s.study, *(_cell(s.labels.get(x)) for x in CHEXPERT_LABELS)] for s in studies),
    )
    split_rows = []
    for s in studies:
        n_images = 1 + int(rng.choice(3, p=(0.5, 0.35, 0.15)))
        split_rows += [[hex_id(rng), s.study, s.subject, s.split] for _ in range(n_images)]
    write_table(
        out / f"{SPLIT_STEM}.csv.gz", ("dicom_id", "study_id", "subject_id", "split"), split_rows
    )
    return out


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
