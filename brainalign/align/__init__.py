"""brainalign.align: word features on the neural clock, always within runs.

fMRI: :func:`lanczos_resample` or :func:`hrf_convolve`, :func:`fir_delays`,
:func:`zscore_by_run`, :func:`trim_mask`, and :func:`fmri_design` that chains them
per run. MEG/EEG/iEEG: :func:`lagged_design`, :func:`trf_design` and
:func:`word_epochs` (mne.Epochs). The pipeline's design matrices (neural samples,
per-layer designs, baseline design, the scored-sample mask) are in :mod:`.design`.
"""
from .delays import fir_delays, run_segments, trim_mask, zscore_by_run
from .design import (
    METHODS,
    baseline_design,
    default_method,
    layer_design,
    neural_samples,
    resolve_delays,
    resolve_method,
    sample_mask,
    zscore_columns,
)
from .fmri import fmri_design
from .hrf import hrf_convolve, hrf_kernel, hrf_matrix
from .lanczos import lanczos_kernel, lanczos_matrix, lanczos_resample
from .meeg import lag_samples, lagged_design, trf_design, word_epochs, word_impulses

__all__ = [
    "METHODS",
    "baseline_design",
    "default_method",
    "layer_design",
    "neural_samples",
    "resolve_delays",
    "resolve_method",
    "sample_mask",
    "zscore_columns",
    "fir_delays",
    "fmri_design",
    "hrf_convolve",
    "hrf_kernel",
    "hrf_matrix",
    "lag_samples",
    "lagged_design",
    "lanczos_kernel",
    "lanczos_matrix",
    "lanczos_resample",
    "run_segments",
    "trf_design",
    "trim_mask",
    "word_epochs",
    "word_impulses",
    "zscore_by_run",
]
