"""Phrase pools of the synthetic MIMIC-CXR writer, one entry per CheXpert label.

Positive sentences never hedge; uncertain ones always do ("possible", "may represent",
"cannot be excluded"), which is what CheXpert reads as -1.0. Negatives are nouns for
"No ... ." lists, or whole normal sentences for the heart, mediastinum and bones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phrases:
    """Templates for one label: full (findings) and short (impression) forms."""

    pos: tuple[str, ...]
    pos_short: tuple[str, ...]
    unc: tuple[str, ...] = ()
    unc_short: tuple[str, ...] = ()
    neg_nouns: tuple[str, ...] = ()  # joined into "No x, y, or z." sentences
    neg_sentences: tuple[str, ...] = ()  # said on their own


PHRASES: dict[str, Phrases] = {
    "Atelectasis": Phrases(
        pos=(
            "{Side} basilar atelectasis.",
            "Mild bibasilar atelectasis.",
            "Linear atelectasis at the {side} lung base.",
            "Subsegmental atelectasis in the {side} lower lobe.",
            "Plate-like atelectasis in the {side} mid lung.",
            "There is {deg} atelectasis at the {side} base.",
        ),
        pos_short=("{Side} basilar atelectasis.", "Bibasilar atelectasis.", "Mild atelectasis."),
        unc=(
            "Possible {side} basilar atelectasis.",
            "Patchy density at the {side} base may represent atelectasis.",
            "Atelectasis at the {side} base cannot be excluded.",
        ),
        unc_short=("Possible atelectasis.", "Possible {side} basilar atelectasis."),
        neg_nouns=("atelectasis",),
    ),
    "Cardiomegaly": Phrases(
        pos=(
            "The heart is {degly} enlarged.",
            "{Deg} cardiomegaly is present.",
            "Cardiomegaly is unchanged.",
            "There is {deg} enlargement of the cardiac silhouette.",
        ),
        pos_short=("Cardiomegaly.", "{Deg} cardiomegaly."),
        unc=(
            "The heart size is borderline, possibly mildly enlarged.",
            "Possible mild cardiomegaly.",
            "The cardiac silhouette may be mildly enlarged.",
        ),
        unc_short=("Possible mild cardiomegaly.",),
        neg_sentences=(
            "The heart size is normal.",
            "Heart size is within normal limits.",
            "Normal heart size.",
        ),
    ),
    "Consolidation": Phrases(
        pos=(
            "Focal consolidation in the {lobe}.",
            "Dense consolidation at the {side} lung base.",
            "There is consolidation in the {lobe}.",
        ),
        pos_short=("{Lobe} consolidation.",),
        unc=(
            "Possible consolidation in the {lobe}.",
            "Subtle consolidation at the {side} base cannot be excluded.",
        ),
        unc_short=("Possible {lobe} consolidation.",),
        neg_nouns=("focal consolidation", "consolidation"),
    ),
    "Edema": Phrases(
        pos=(
            "{Deg} pulmonary edema.",
            "There is {deg} interstitial pulmonary edema.",
            "Pulmonary edema has increased since the prior study.",
            "{Deg} pulmonary edema with vascular congestion.",
        ),
        pos_short=("{Deg} pulmonary edema.", "Pulmonary edema."),
        unc=(
            "Possible mild pulmonary edema.",
            "Vascular prominence may represent mild edema.",
            "Mild interstitial edema cannot be excluded.",
        ),
        unc_short=("Possible mild edema.",),
        neg_nouns=("pulmonary edema", "edema"),
    ),
    "Enlarged Cardiomediastinum": Phrases(
        pos=(
            "The mediastinum is widened.",
            "Widening of the superior mediastinum.",
            "The cardiomediastinal silhouette is enlarged.",
            "Mediastinal contours are widened compared with the prior study.",
        ),
        pos_short=("Widened mediastinum.", "Enlarged cardiomediastinal silhouette."),
        unc=("The mediastinum may be mildly widened.", "Possible mediastinal widening."),
        unc_short=("Possible mediastinal widening.",),
        neg_sentences=(
            "The mediastinal contours are normal.",
            "Mediastinal and hilar contours are unremarkable.",
            "Cardiomediastinal silhouette is within normal limits.",
        ),
    ),
    "Fracture": Phrases(
        pos=(
            "Acute fracture of the {side} {rib} rib.",
            "There is a displaced fracture of the {side} clavicle.",
            "Healing fracture of the {side} {rib} rib.",
            "Compression fracture of a mid thoracic vertebral body.",
        ),
        pos_short=("{Side} {rib} rib fracture.", "Fracture of the {side} {rib} rib."),
        unc=(
            "Possible nondisplaced fracture of the {side} {rib} rib.",
            "A {side} {rib} rib fracture cannot be excluded.",
        ),
        unc_short=("Possible {side} rib fracture.",),
        neg_sentences=(
            "No acute osseous abnormality.",
            "No displaced fracture is seen.",
            "The osseous structures are intact.",
        ),
    ),
    "Lung Lesion": Phrases(
        pos=(
            "A {cm} cm nodule is seen in the {lobe}.",
            "{Side} {zone} lung mass measuring {cm} cm.",
            "There is a {cm} cm pulmonary nodule in the {lobe}.",
        ),
        pos_short=("{cm} cm {lobe} nodule.", "{Side} {zone} lung mass."),
        unc=(
            "Possible nodule in the {lobe}.",
            "A nodular density in the {side} {zone} lung may represent a nipple shadow.",
            "Possible {side} {zone} lung nodule.",
        ),
        unc_short=("Possible pulmonary nodule.",),
        neg_nouns=("suspicious pulmonary nodule", "pulmonary nodule or mass"),
    ),
    "Lung Opacity": Phrases(
        pos=(
            "Patchy opacity at the {side} lung base.",
            "Hazy opacities in the {side} {zone} lung.",
            "Increased {side} basilar opacity.",
            "There are patchy airspace opacities in the {side} lung.",
        ),
        pos_short=("{Side} basilar opacity.", "Patchy {side} lung opacity."),
        unc=(
            "Possible subtle opacity at the {side} base.",
            "A faint opacity in the {side} {zone} lung may be artifactual.",
        ),
        unc_short=("Possible {side} basilar opacity.",),
        neg_nouns=("focal opacity", "focal airspace opacity"),
    ),
    "Pleural Effusion": Phrases(
        pos=(
            "{Sev} {sides} pleural effusion.",
            "There is a {sev} {sides} pleural effusion.",
            "{Sides} pleural effusion has increased in size.",
        ),
        pos_short=("{Sev} {sides} pleural effusion.", "{Sides} pleural effusion."),
        unc=(
            "Possible small {side} pleural effusion.",
            "Blunting of the {side} costophrenic angle may reflect a small effusion.",
            "A trace {side} effusion cannot be excluded.",
        ),
        unc_short=("Possible small {side} effusion.",),
        neg_nouns=("pleural effusion", "pleural effusions"),
    ),
    "Pleural Other": Phrases(
        pos=(
            "Chronic {side} apical pleural thickening is again noted.",
            "Calcified pleural plaques are seen along the {side} hemidiaphragm.",
            "{Side} pleural thickening is unchanged.",
        ),
        pos_short=("{Side} pleural thickening.", "Calcified pleural plaques."),
        unc=(
            "Possible {side} pleural thickening.",
            "Irregularity along the {side} pleura may reflect pleural scarring.",
        ),
        unc_short=("Possible pleural thickening.",),
        neg_nouns=("pleural thickening",),
    ),
    "Pneumonia": Phrases(
        pos=(
            "Findings are consistent with pneumonia in the {lobe}.",
            "{Lobe} pneumonia.",
            "Multifocal pneumonia is present.",
        ),
        pos_short=("{Lobe} pneumonia.", "Pneumonia."),
        unc=(
            "Cannot exclude early pneumonia.",
            "Early pneumonia in the {lobe} cannot be excluded.",
            "Findings at the {side} base may represent pneumonia.",
            "Possible pneumonia in the {lobe}.",
        ),
        unc_short=("Cannot exclude pneumonia.", "Possible early pneumonia."),
        neg_nouns=("pneumonia",),
    ),
    "Pneumothorax": Phrases(
        pos=(
            "There is a {sev} {side} pneumothorax.",
            "{Sev} {side} apical pneumothorax.",
            "{Side} pneumothorax is slightly larger than before.",
        ),
        pos_short=("{Sev} {side} pneumothorax.", "{Side} pneumothorax."),
        unc=(
            "Possible tiny {side} apical pneumothorax.",
            "A tiny {side} apical pneumothorax cannot be excluded.",
        ),
        unc_short=("Possible tiny {side} pneumothorax.",),
        neg_nouns=("pneumothorax",),
    ),
    "Support Devices": Phrases(
        pos=(
            "Endotracheal tube terminates {tubecm} cm above the carina.",
            "{Side} internal jugular central venous catheter terminates in the mid SVC.",
            "An enteric tube courses below the diaphragm with the tip in the stomach.",
            "{Side} PICC line tip is in the lower SVC.",
            "{Side}-sided pacemaker with leads in the right atrium and right ventricle.",
            "Sternal wires and mediastinal clips are present.",
        ),
        pos_short=(
            "Lines and tubes in standard position.",
            "Endotracheal tube in appropriate position.",
            "Support devices unchanged in position.",
        ),
    ),
}

# Two labels positive together, said in one sentence (full form, short form).
COMBINED: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("Consolidation", "Pneumonia"): (
        (
            "{Lobe} consolidation consistent with pneumonia.",
            "Consolidation in the {lobe} compatible with pneumonia.",
        ),
        ("{Lobe} pneumonia with consolidation.",),
    ),
    ("Cardiomegaly", "Edema"): (
        (
            "Cardiomegaly with {deg} pulmonary edema.",
            "The heart is enlarged, with {deg} pulmonary edema.",
        ),
        ("Cardiomegaly and {deg} pulmonary edema.",),
    ),
    ("Pleural Effusion", "Atelectasis"): (
        (
            "{Sev} {sides} pleural effusion with adjacent atelectasis.",
            "{Sev} {sides} effusion with associated compressive atelectasis.",
        ),
        ("{Sides} effusion and atelectasis.",),
    ),
}

HEART_AND_MEDIASTINUM_NORMAL = (
    "The heart size and mediastinal contours are normal.",
    "Heart size and cardiomediastinal contours are within normal limits.",
)
NEGATION = (
    "No {x}.",
    "There is no {x}.",
    "No {x} is seen.",
    "No evidence of {x}.",
    "No {x} is identified.",
)
NORMAL_IMPRESSION = (
    "No acute cardiopulmonary process.",
    "No acute intrathoracic abnormality.",
    "No evidence of acute cardiopulmonary disease.",
)
FILLER = (
    "Degenerative changes are seen in the thoracic spine.",
    "The imaged upper abdomen is unremarkable.",
    "The lungs are well expanded.",
    "The patient is slightly rotated to the {side}.",
)

EXAMINATION = (
    "CHEST (PA AND LAT)",
    "CHEST (PORTABLE AP)",
    "CHEST PORT. LINE PLACEMENT",
    "CHEST (PA AND LAT)",
)
COMPLAINT = (
    "shortness of breath",
    "cough",
    "chest pain",
    "fever",
    "hypoxia",
    "fall",
    "weakness",
    "new oxygen requirement",
)
QUESTION = (
    "eval for pneumonia",
    "assess for interval change",
    "evaluate tube placement",
    "eval for effusion",
    "r/o acute process",
    "eval for edema",
)
COMPARISON = ("___", "None.", "Chest radiograph from ___.", "Prior study from ___.")
NOTIFICATION = (
    "The findings were discussed with Dr. ___ by telephone on ___ at ___.",
    "Dr. ___ was notified of the findings by phone at ___.",
)
ADDENDUM = (
    "Comparison with the prior study from ___ shows no relevant change.",
    "Note is made of the study from ___, which was not available at the initial read.",
)
