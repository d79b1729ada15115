"""Names shared by the core, the CLI and the dashboard: file names, the published study's numbers and
the defaults the CLI shows. Standard library only (nothing imported), so an argument parser or a page
can import it without loading numpy or torch. Plain constants, grouped by what they name.
"""

from __future__ import annotations

# ---- a generator folder (models/<name>/)
CARD_FILE = "card.json"  #: also the card of a VU dataset folder
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"

# ---- an evaluation report (models/<name>/report/)
REPORT_DIR = "report"
REPORT_FILE = "report.json"
ARRAYS_FILE = "arrays.npz"

# ---- a VU dataset folder, and where built datasets are cached
IMAGES_FILE = "images.npy"
UNITS_FILE = "units.csv"
DATASETS_DIR = "datasets"  #: sub-folder of the cache root

# ---- NIfTI pairs: file names, and the patient id taken from them
IMAGE_SUFFIX = "_img.nii.gz"
LABEL_SUFFIX = "_vert.nii.gz"
IMAGE_GLOB = "*" + IMAGE_SUFFIX
LABEL_GLOB = "*" + LABEL_SUFFIX
#: the file name up to the first underscore (``sub-01_img.nii.gz`` -> ``sub-01``)
PATIENT_REGEX = r"^(?P<patient>[^_]+)"
PATIENTS_CSV = "patients.csv"  #: a phantom cohort's attributes

# ---- VU extraction defaults (synthvu_core.data.units.ExtractConfig)
VU_SLICES = 9
VU_SIZE = 64
VU_SLICE_MM = 2.0
VU_FOV_FACTOR = 1.8
VU_MODES = ("disc", "body")  #: centre VUs on discs (the default) or on bodies

# ---- patient-wise split defaults (synthvu_core.data.dataset.SplitConfig): train, holdout, reference
SPLIT_RATIOS = (0.6, 0.2, 0.2)

# ---- the published study's utility (balanced accuracy of the level classifier)
STUDY_TRTR = 0.893
STUDY_TSTR = 0.830
STUDY_RATIO = 0.93  #: TSTR / TRTR
