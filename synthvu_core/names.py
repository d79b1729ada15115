"""Names shared by the core, the CLI and the dashboard: file names, the published study's numbers,
the defaults the CLI shows, and the evaluation's attacks, spaces, threat models and controls. Standard library only
(nothing imported), so an argument parser or a page can import it without loading numpy or torch. Plain
constants, grouped by what they name.
"""

from __future__ import annotations

# ---- a generator folder (models/<name>/)
CARD_FILE = "card.json"  #: also the card of a VU dataset folder
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
SYNTHETIC_TABLE_FILE = "clinical_synthetic.csv"  #: a joint generator's released synthetic clinical table

# ---- an evaluation report (models/<name>/report/)
REPORT_DIR = "report"
REPORT_FILE = "report.json"
ARRAYS_FILE = "arrays.npz"
CLINICAL_REPORT_FILE = "clinical.json"  #: a joint generator's clinical evaluation
VOLUME_REPORT = "volume_report.json"  #: a sub-volume generator's evaluation (beside, never in place of, a VU report)

# ---- a VU dataset folder, and where built datasets are cached
IMAGES_FILE = "images.npy"
UNITS_FILE = "units.csv"
DATASETS_DIR = "datasets"  #: sub-folder of the cache root
#: the privacy ledger kept in a dataset folder (every run on its patients); a rebuild into the folder keeps it
LEDGER_FILE = "privacy_ledger.json"
#: a dataset card's ``{patient id: [sha256 of each source image]}``: a patient's identity in the privacy ledger
#: whatever its id in a build (private like the dataset: never copied into a generator card)
IMAGE_DIGESTS = "image_sha256"
CLINICAL_FILE = "clinical.csv"  #: a dataset's per-patient clinical table (synthvu_core.data.clinical)

# ---- NIfTI pairs: file names, and the patient id taken from them
IMAGE_SUFFIX = "_img.nii.gz"
LABEL_SUFFIX = "_vert.nii.gz"
IMAGE_GLOB = "*" + IMAGE_SUFFIX
LABEL_GLOB = "*" + LABEL_SUFFIX
#: the file name up to the first underscore (``sub-01_img.nii.gz`` -> ``sub-01``)
PATIENT_REGEX = r"^(?P<patient>[^_]+)"
#: units.csv column naming the source (site, scanner or sequence) a VU came from: its input folder by
#: default (``data build --sources FILE.csv`` names it instead). The ``source`` column is its image file.
SOURCE_COLUMN = "site"
PATIENTS_CSV = "patients.csv"  #: a phantom cohort's attributes

# ---- VU extraction defaults (synthvu_core.data.units.ExtractConfig)
VU_SLICES = 9
VU_SIZE = 64
VU_SLICE_MM = 2.0
VU_FOV_FACTOR = 1.8
UNIT_KINDS = ("vu", "subvolume")  #: what a dataset holds: VUs (slices of a disc-sized field) or isotropic sub-volumes
VU_MODES = ("disc", "body")  #: centre VUs on discs (the default) or on bodies

# ---- patient-wise split defaults (synthvu_core.data.dataset.SplitConfig): train, holdout, reference
SPLIT_RATIOS = (0.6, 0.2, 0.2)

# ---- the published study's utility (balanced accuracy of the level classifier)
STUDY_TRTR = 0.893
STUDY_TSTR = 0.830
STUDY_RATIO = 0.93  #: TSTR / TRTR
#: a class's recall gets a patient-bootstrap interval from this many holdout patients of it up
MIN_RECALL_PATIENTS = 2
#: What a report's utility interval (holdout patients and classifier seeds) leaves out, said wherever it is shown.
ONE_GENERATOR = ("each interval holds one trained generator: training it again with another seed is not in it "
                 "(`synthvu report seeds` reads that spread from several runs)")

# ---- controls inside a report folder
CONTROLS_DIR = "controls"

#: Membership attacks, in display order. Black-box attacks read only the released samples.
ATTACKS: tuple[str, ...] = ("pairwise", "distribution", "domias", "discriminator")
BLACK_BOX_ATTACKS: tuple[str, ...] = ("pairwise", "distribution", "domias")
WHITE_BOX_ATTACKS: tuple[str, ...] = ("discriminator",)
#: Attack spaces. ``embedding`` and ``umap`` are fitted on reference patients only.
SPACES: tuple[str, ...] = ("pixel", "embedding", "umap")
#: The pre-specified primary attack of the released-samples verdict (the study's pairwise pixel attack).
PRIMARY_ATTACK = ("pairwise", "pixel")

#: Utility settings.
UTILITY_SETTINGS: tuple[str, ...] = ("trtr", "tstr", "trts")

#: Threat models, each with its own verdict.
THREAT_MODELS: tuple[str, ...] = ("released_samples", "released_discriminator")

#: Controls: graded positive controls (fraction of member copies mixed in) and the negative control.
GRADED_FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.2)
POWER_FRACTION = 0.05  # power: an attack detects this mixture (its AUC CI on it lies above 0.5)
INDEPENDENT_CONTROL = "independent"
#: Realistic positive control: 5 % of the samples replaced by member patients' VUs that are not candidates,
#: perturbed at the scale of real near-duplicates.
REALISTIC_CONTROL = "realistic_5pct"

#: Power status of a black-box attack (``meta.power[...]["status"]``) -> the words the report shows.
#: Only ``power`` counts in verdict (a): the family is fixed by power alone. ``detects`` (no power, but the own
#: AUC CI lies above 0.5) is reported, never counted; ``no_room`` is read from older reports only.
POWER_LABELS: dict[str, str] = {
    "power": "yes",
    "detects": "no power, but its own AUC CI lies above 0.5 (reported, not counted)",
    "no_room": "no room to rise (own AUC near 1, CI above chance): a finding, not a lack of power",
    "no_power": "no power on this data",
    "not_checked": "not checked",
}
COUNTED_POWER: tuple[str, ...] = ("power",)


def graded_control(fraction: float) -> str:
    """Name of the graded positive control with ``fraction`` of member copies: ``graded_5pct``."""
    pct = fraction * 100
    return f"graded_{pct:g}pct".replace(".", "p")


GRADED_CONTROLS: tuple[str, ...] = tuple(graded_control(f) for f in GRADED_FRACTIONS)
CONTROLS: tuple[str, ...] = (*GRADED_CONTROLS, REALISTIC_CONTROL, INDEPENDENT_CONTROL)

#: What a shared DP generator carries that its epsilon does not cover: said in its card (``dp.not_covered``), its
#: share manifest and its model card, so no reader takes the bound for more than the weights.
NOT_COVERED_BY_DP = (
    "it covers the weights (and a DP discriminator) only; the training split's VU count and median spacing in the card "
    "and every number of the evaluation report (utility, fidelity and attack aggregates) are computed on the real "
    "patients without DP and are not covered (share the report only with those allowed to see aggregates of the data)"
)
