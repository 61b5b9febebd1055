"""Synthetic CT-RATE: report and label CSVs in the real layout, one row per reconstruction.

Each scan gets latent abnormalities (correlated: coronary with aortic calcification,
atelectasis with effusion, opacity with consolidation, peribronchial thickening with
bronchiectasis), written as sentences; its 0/1 labels are exactly the findings the text
states. Reconstructions of a scan repeat its report and labels, as in CT-RATE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsweep.data import synth_ct_rate_phrases as ph
from dpsweep.data.csvio import write_table
from dpsweep.data.labels import CT_RATE_LABELS
from dpsweep.data.synth_text import assign_parts, pick, say

PART_FRACTIONS = (0.85, 0.15)  # train, validation (by patient)
PART_PREFIX = ("train", "valid")
REPORT_HEADER = (
    "VolumeName",
    "ClinicalInformation_EN",
    "Technique_EN",
    "Findings_EN",
    "Impressions_EN",
)


@dataclass(frozen=True)
class Scan:
    part: int
    volume_stem: str  # e.g. train_12_a
    n_recons: int
    labels: tuple[int, ...]
    row: tuple[str, str, str, str]  # clinical information, technique, findings, impression


def sample_findings(rng: np.random.Generator, *, older: bool) -> set[str]:
    """The abnormalities present in one scan."""
    present: set[str] = set()

    def draw(label: str, p: float) -> bool:
        if rng.random() < p:
            present.add(label)
        return label in present

    o = older
    draw("Medical material", 0.18 if o else 0.06)
    aorta = draw("Arterial wall calcification", 0.45 if o else 0.12)
    draw("Coronary artery wall calcification", 0.60 if aorta else 0.06)
    cardiomegaly = draw("Cardiomegaly", 0.15 if o else 0.05)
    draw("Pericardial effusion", 0.05 if cardiomegaly else 0.012)
    draw("Hiatal hernia", 0.02)
    draw("Lymphadenopathy", 0.22)
    draw("Emphysema", 0.25 if o else 0.12)
    effusion = draw("Pleural effusion", 0.10)
    draw("Atelectasis", 0.55 if effusion else 0.18)
    draw("Lung nodule", 0.40)
    consolidation = draw("Consolidation", 0.12)
    draw("Lung opacity", 0.70 if consolidation else 0.20)
    draw("Pulmonary fibrotic sequela", 0.22)
    draw("Mosaic attenuation pattern", 0.07)
    bronchiectasis = draw("Bronchiectasis", 0.09)
    draw("Peribronchial thickening", 0.50 if bronchiectasis else 0.06)
    draw("Interlobular septal thickening", 0.06 if effusion else 0.015)
    return present


def _block(
    rng: np.random.Generator,
    labels: tuple[str, ...],
    present: set[str],
    memory: dict[str, dict[str, str]],
) -> list[str]:
    out: list[str] = []
    for label in labels:
        phrases = ph.PHRASES[label]
        if label in present:
            out.append(say(rng, phrases.pos, memory.setdefault(label, {})))
        elif phrases.neg and rng.random() < phrases.neg_rate:
            out.append(say(rng, phrases.neg))
    return out


def render(rng: np.random.Generator, present: set[str]) -> tuple[str, str]:
    """Findings and impression text of one scan."""
    effusions_absent = not present & {"Pleural effusion", "Pericardial effusion"}
    skip = (
        {"Pleural effusion", "Pericardial effusion"}
        if effusions_absent and rng.random() < 0.6
        else set()
    )
    memory: dict[str, dict[str, str]] = {}  # same lobe/side when the impression repeats a finding
    findings = [pick(rng, ph.AIRWAY)]
    findings += _block(rng, tuple(x for x in ph.MEDIASTINUM if x not in skip), present, memory)
    findings.append(pick(rng, ph.ESOPHAGUS))
    lungs = _block(rng, tuple(x for x in ph.LUNGS if x not in skip), present, memory)
    if not present & set(ph.LUNGS):
        lungs.insert(0, pick(rng, ph.LUNGS_CLEAR))
    findings += lungs
    if skip:
        findings.append(pick(rng, ph.BOTH_EFFUSIONS_ABSENT))
    findings += [pick(rng, ph.TRAILER) for _ in range(int(rng.integers(1, 3)))]
    stated = [
        say(rng, ph.PHRASES[x].short, memory.setdefault(x, {}))
        for x in CT_RATE_LABELS
        if x in present
    ]
    impression = stated or [pick(rng, ph.NORMAL_IMPRESSION)]
    return " ".join(findings), " ".join(impression)


def make_scans(n: int, seed: int) -> list[Scan]:
    """n synthetic scans, 1-2 per patient, patients split ~85/15 train/validation."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(1 + int(rng.random() < 0.3))
    sizes[-1] -= sum(sizes) - n
    parts = assign_parts(rng, len(sizes), PART_FRACTIONS)
    counters = [0, 0]
    scans: list[Scan] = []
    for size, part in zip(sizes, parts, strict=True):
        counters[part] += 1
        older = rng.random() < 0.5
        for letter in "ab"[:size]:
            present = sample_findings(rng, older=older)
            findings, impression = render(rng, present)
            scans.append(
                Scan(
                    part=int(part),
                    volume_stem=f"{PART_PREFIX[part]}_{counters[part]}_{letter}",
                    n_recons=1 + int(rng.random() < 0.6),
                    labels=tuple(int(x in present) for x in CT_RATE_LABELS),
                    row=(pick(rng, ph.CLINICAL), pick(rng, ph.TECHNIQUE), findings, impression),
                )
            )
    return scans


def write_ct_rate(out: Path, *, n: int, seed: int) -> Path:
    """Write n synthetic scans under `out` in the CT-RATE layout; return `out`."""
    scans = make_scans(n, seed)
    reports = out / "dataset" / "radiology_text_reports"
    labels = out / "dataset" / "multi_abnormality_labels"
    for part, (report_stem, label_stem) in enumerate(
        (
            ("train_reports", "train_predicted_labels"),
            ("validation_reports", "valid_predicted_labels"),
        )
    ):
        chosen = [s for s in scans if s.part == part]
        volumes = [
            (f"{s.volume_stem}_{r}.nii.gz", s) for s in chosen for r in range(1, s.n_recons + 1)
        ]
        write_table(
            reports / f"{report_stem}.csv", REPORT_HEADER, ([v, *s.row] for v, s in volumes)
        )
        write_table(
            labels / f"{label_stem}.csv",
            ("VolumeName", *CT_RATE_LABELS),
            ([v, *s.labels] for v, s in volumes),
        )
    return out
