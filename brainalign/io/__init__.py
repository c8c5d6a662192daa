"""brainalign.io: BIDS datasets and word tables into Recording and Stimulus containers.

- :func:`load_bids` reads fMRI (raw or fMRIPrep; voxels or atlas parcels), MEG,
  EEG and iEEG runs with their words.
- :func:`read_textgrid`, :func:`read_transcript`, :func:`read_events_words`
  read word tables.
- :func:`list_subjects`, :func:`list_tasks`, :func:`list_runs`,
  :func:`list_sessions` tell what a BIDS root holds.
- :func:`read_masked` streams masked NIfTI data; :func:`to_nifti` puts
  per-voxel values back into the input grid.
"""
from .bids import load_bids
from .layout import list_entities, list_runs, list_sessions, list_subjects, list_tasks, parse_entities
from .nifti import read_masked, to_nifti
from .words import SILENCE_LABELS, read_events_words, read_textgrid, read_transcript, read_words

__all__ = [
    "SILENCE_LABELS",
    "list_entities",
    "list_runs",
    "list_sessions",
    "list_subjects",
    "list_tasks",
    "load_bids",
    "parse_entities",
    "read_events_words",
    "read_masked",
    "read_textgrid",
    "read_transcript",
    "read_words",
    "to_nifti",
]

try:  # adapters written alongside (ROI tables incl. Alice; per-word ERP tables incl. Frank 2015)
    from .roi_table import load_alice, load_roi_timecourses  # noqa: F401

    __all__ += ["load_alice", "load_roi_timecourses"]
except ImportError:  # pragma: no cover - module absent or incomplete
    pass
try:
    from .word_table import load_frank2015  # noqa: F401

    __all__ += ["load_frank2015"]
except ImportError:  # pragma: no cover
    pass
