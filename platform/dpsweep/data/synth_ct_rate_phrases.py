"""Phrase pools of the synthetic CT-RATE writer (wording modelled on CT-RATE's English
reports). Labels are binary: a positive sentence makes the label 1; a negated or
unmentioned finding is 0."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phrases:
    pos: tuple[str, ...]
    short: tuple[str, ...]
    neg: tuple[str, ...] = ()
    neg_rate: float = 0.0  # chance a negative label is stated as normal


PHRASES: dict[str, Phrases] = {
    "Medical material": Phrases(
        pos=(
            "Central venous catheter is observed with its tip in the superior vena cava.",
            "Cardiac pacemaker leads are present in the right heart chambers.",
            "Sternotomy wires and mediastinal surgical clips are noted.",
            "A stent is observed in the left anterior descending coronary artery.",
        ),
        short=(
            "Medical material in place.",
            "Postoperative sternotomy wires.",
            "Central venous catheter.",
        ),
    ),
    "Arterial wall calcification": Phrases(
        pos=(
            "Calcific atherosclerotic changes are observed in the aortic wall.",
            "Atheromatous plaques are seen in the wall of the thoracic aorta.",
            "Arterial wall calcifications are present in the aorta and its branches.",
        ),
        short=("Atherosclerosis of the thoracic aorta.", "Aortic wall calcification."),
        neg=("No calcification was observed in the aortic wall.",),
        neg_rate=0.2,
    ),
    "Cardiomegaly": Phrases(
        pos=(
            "Heart size is increased.",
            "Cardiomegaly is present.",
            "The heart is {degly} enlarged.",
        ),
        short=("Cardiomegaly.",),
        neg=("Heart contour and size are normal.", "Heart size is within normal limits."),
        neg_rate=0.8,
    ),
    "Pericardial effusion": Phrases(
        pos=(
            "Pericardial effusion with a thickness of {mm} mm is observed.",
            "There is a minimal pericardial effusion.",
        ),
        short=("Pericardial effusion.",),
        neg=("No pericardial effusion was detected.",),
        neg_rate=0.5,
    ),
    "Coronary artery wall calcification": Phrases(
        pos=(
            "Calcific plaques are observed in the coronary arteries.",
            "Coronary artery wall calcifications are present.",
            "Calcification is seen in the left anterior descending coronary artery.",
        ),
        short=("Coronary artery calcification.",),
        neg=("No coronary artery calcification was detected.",),
        neg_rate=0.2,
    ),
    "Hiatal hernia": Phrases(
        pos=("A hiatal hernia is observed.", "Sliding type hiatal hernia is present."),
        short=("Hiatal hernia.",),
        neg=("No hiatal hernia is seen.",),
        neg_rate=0.1,
    ),
    "Lymphadenopathy": Phrases(
        pos=(
            "Lymph nodes of pathological size are observed in the mediastinum, the largest "
            "measuring {mm} mm in short axis.",
            "Mediastinal lymphadenopathy is present.",
            "Enlarged lymph nodes are seen in the {side} hilum.",
        ),
        short=("Mediastinal lymphadenopathy.", "Pathologically enlarged lymph nodes."),
        neg=(
            "No lymph node in pathological size and appearance was detected in the mediastinum "
            "and hilar regions.",
            "No mediastinal or hilar lymphadenopathy.",
        ),
        neg_rate=0.7,
    ),
    "Emphysema": Phrases(
        pos=(
            "Centrilobular emphysematous changes are observed in both lungs.",
            "Paraseptal emphysema is seen in both upper lobes.",
            "Emphysematous areas are present in the {lobe}.",
        ),
        short=("Emphysema.", "Centrilobular emphysema."),
    ),
    "Atelectasis": Phrases(
        pos=(
            "Subsegmental atelectasis is observed in the {lobe}.",
            "Linear atelectasis is seen in the {lobe}.",
            "Passive atelectasis is present in the {side} lower lobe.",
        ),
        short=("Atelectasis in the {lobe}.", "Subsegmental atelectasis."),
    ),
    "Lung nodule": Phrases(
        pos=(
            "A {mm} mm nodule is observed in the {lobe}.",
            "Millimetric nodules are seen in both lungs.",
            "A solid nodule measuring {mm} mm is present in the {lobe}.",
        ),
        short=("Lung nodule in the {lobe}.", "Pulmonary nodules."),
        neg=("No mass or nodule was detected in the lung parenchyma.",),
        neg_rate=0.4,
    ),
    "Lung opacity": Phrases(
        pos=(
            "Ground-glass opacities are observed in the {lobe}.",
            "Patchy ground-glass densities are seen in both lungs.",
        ),
        short=("Ground-glass opacities.",),
    ),
    "Pulmonary fibrotic sequela": Phrases(
        pos=(
            "Fibrotic sequelae are observed in the {lobe}.",
            "Parenchymal fibrotic bands are seen in the {lobe}.",
        ),
        short=("Fibrotic sequelae.",),
    ),
    "Pleural effusion": Phrases(
        pos=(
            "Pleural effusion measuring {mm} mm is observed on the {side}.",
            "Bilateral pleural effusion is present.",
        ),
        short=("Pleural effusion.",),
        neg=("No pleural effusion was detected.",),
        neg_rate=0.5,
    ),
    "Mosaic attenuation pattern": Phrases(
        pos=(
            "Mosaic attenuation pattern is observed in both lungs.",
            "Mosaic attenuation is present in the lower lobes, suggesting air trapping.",
        ),
        short=("Mosaic attenuation pattern.",),
    ),
    "Peribronchial thickening": Phrases(
        pos=(
            "Peribronchial thickening is observed in both lower lobes.",
            "Bronchial wall thickening is seen in the {lobe}.",
        ),
        short=("Peribronchial thickening.",),
    ),
    "Consolidation": Phrases(
        pos=(
            "Consolidation is observed in the {lobe}.",
            "An area of consolidation with air bronchograms is seen in the {lobe}.",
        ),
        short=("Consolidation in the {lobe}.",),
        neg=("No consolidation was detected.",),
        neg_rate=0.3,
    ),
    "Bronchiectasis": Phrases(
        pos=(
            "Cylindrical bronchiectasis is seen in the {lobe}.",
            "Bronchiectatic changes are observed in both lower lobes.",
        ),
        short=("Bronchiectasis.",),
    ),
    "Interlobular septal thickening": Phrases(
        pos=(
            "Interlobular septal thickening is observed in both lungs.",
            "Smooth interlobular septal thickening is seen in the {lobe}.",
        ),
        short=("Interlobular septal thickening.",),
    ),
}

# Anatomical order in which findings are described.
MEDIASTINUM = (
    "Medical material",
    "Cardiomegaly",
    "Pericardial effusion",
    "Arterial wall calcification",
    "Coronary artery wall calcification",
    "Lymphadenopathy",
    "Hiatal hernia",
)
LUNGS = (
    "Emphysema",
    "Consolidation",
    "Lung opacity",
    "Atelectasis",
    "Lung nodule",
    "Pulmonary fibrotic sequela",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Bronchiectasis",
    "Interlobular septal thickening",
    "Pleural effusion",
)

AIRWAY = ("Trachea and both main bronchi are open.", "Trachea and main bronchi are patent.")
ESOPHAGUS = ("Thoracic esophagus calibration was normal.", "The esophagus is of normal calibre.")
LUNGS_CLEAR = (
    "Both lungs are clear; no infiltrative lesion was detected.",
    "The lung parenchyma shows no active infiltration.",
)
BOTH_EFFUSIONS_ABSENT = ("No pleural or pericardial effusion was detected.",)
TRAILER = (
    "No upper abdominal organ pathology was detected in the sections.",
    "Bone structures in the study area are natural.",
    "Degenerative changes are observed in the thoracic vertebrae.",
)
NORMAL_IMPRESSION = ("No significant pathology was detected.", "Normal chest CT findings.")
CLINICAL = (
    "Cough.",
    "Shortness of breath.",
    "Fever and cough.",
    "Chest pain.",
    "Follow-up.",
    "Not given.",
)
TECHNIQUE = (
    "Non-contrast images were obtained in the axial plane with 1.5 mm slice thickness.",
    "Contrast-enhanced images were obtained in the axial plane with 1 mm slice thickness.",
)
