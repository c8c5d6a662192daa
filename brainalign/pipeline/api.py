"""``align_model``: score every layer of a model against one recording.

The Python face of the pipeline. Keyword options become specs
(:mod:`.specs`), the participant is prepared once (:func:`.prepare.prepare`: samples,
keep-mask, folds, baseline and per-layer designs from :mod:`brainalign.align`), the
scorers (:mod:`.scoring`: ridge encoding from :mod:`brainalign.encoding`, RSA from
:mod:`brainalign.rsa`) score it, and :func:`finalize` adds the across-layer
statistics. Returns an :class:`AlignmentResult`.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import nibabel
import numpy as np
import pandas as pd
import scipy
import sklearn
import xarray as xr
from scipy import stats

from .._version import __version__
from ..encoding import DEFAULT_ALPHAS, fdr_bh
from ..errors import InputError, ShapeMismatchError
from .choices import SCORING_METHODS
from . import pvalues
from .prepare import prepare
from .result import AlignmentResult, merge_chunks
from .scoring import score_prepared
from .specs import AlignSpec, CVSpec, RSASpec, ScoreSpec
from .targets import copy_geometry
from .uncertainty import layer_uncertainty
from .windows import choose_windows

#: Significance level of ``p_fdr`` when none is given (``statistics.q``).
DEFAULT_Q = 0.05


# ------------------------------------------------------------------------- public
def select_activations(encoder, stimulus, layers=None) -> xr.DataArray:
    """Activations (layer, word, feature) from an encoder or a precomputed DataArray."""
    acts = encoder if isinstance(encoder, xr.DataArray) else encoder.encode(stimulus)
    if acts.sizes["word"] != len(stimulus):
        raise ShapeMismatchError(f"activations have {acts.sizes['word']} words, stimulus has {len(stimulus)}")
    if layers is not None and not (isinstance(layers, str) and layers == "all"):
        have = [int(x) for x in acts["layer"].values]
        missing = [int(l) for l in layers if int(l) not in have]
        if missing:
            raise InputError(f"layers {missing} not in the model (it has layers {have[0]}..{have[-1]})")
        acts = acts.sel(layer=[int(l) for l in layers])
    return acts


def score_chunk(
    recording: xr.DataArray,
    stimulus: pd.DataFrame,
    activations: xr.DataArray,
    *,
    methods: Sequence[str] = ("encoding", "rsa"),
    alignment: str = "auto",
    delays: Sequence[int] | None = None,
    window: int = 3,
    trim: tuple[int, int] = (0, 0),
    tmin: float = 0.2,
    tmax: float = 0.6,
    cv: str = "contiguous",
    n_folds: int = 5,
    cv_column: str | None = None,
    inner_cv: int = 5,
    alphas: Sequence[float] | None = None,
    baseline=None,
    baseline_delays=None,
    with_baseline: bool = True,
    fit_baseline: bool = True,
    baseline_penalty: str = "banded",
    regions: Mapping[str, Sequence[int]] | None = None,
    rsa_options: Mapping[str, Any] | None = None,
    permutations: int = ScoreSpec.permutations,
    seed: int = 0,
) -> xr.Dataset:
    """Raw scores for the layers in ``activations`` (no FDR, no ceiling): one task's work.

    The keyword options become :class:`~.specs.AlignSpec`, :class:`~.specs.CVSpec`
    and :class:`~.specs.ScoreSpec`; the recording is prepared once
    (:func:`.prepare.prepare`) and scored (:func:`.scoring.score_prepared`).
    """
    align = AlignSpec(method=alignment, delays=None if delays is None else tuple(delays), window=window, trim=tuple(trim), tmin=tmin, tmax=tmax)
    cvs = CVSpec(kind=cv, n_folds=n_folds, column=cv_column, inner_cv=inner_cv)
    spec = ScoreSpec(methods=tuple(methods), alphas=tuple(alphas) if alphas is not None else DEFAULT_ALPHAS,
                     baseline_penalty=baseline_penalty, cv=cvs, rsa=RSASpec(**dict(rsa_options or {})),
                     permutations=int(permutations), seed=int(seed))
    P = prepare(recording, stimulus, baseline, align, cvs, baseline_delays=baseline_delays, regions=regions)
    return score_prepared(P, activations, spec, with_baseline=with_baseline, fit_baseline=fit_baseline)


def _fold_pvalues(r_folds: xr.DataArray) -> xr.DataArray:
    """One-sided one-sample t-test of the per-fold r against 0: ``r_folds`` without its ``fold`` dim."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.ttest_1samp(r_folds.values, 0.0, axis=r_folds.dims.index("fold"), alternative="greater")
    p = np.asarray(t.pvalue, dtype=np.float64)
    return xr.DataArray(np.where(np.isfinite(p), p, 1.0), dims=[d for d in r_folds.dims if d != "fold"])


def finalize(ds: xr.Dataset, *, ceiling=None, fdr: bool = True, q: float = DEFAULT_Q) -> xr.Dataset:
    """Across-layer statistics: p-values, FDR over layer x target, ceiling, delta r.

    ``p`` comes from the scorer's refit circular-shift null when ``scoring.permutations``
    > 0 (:mod:`.pvalues`); without it, from the old one-sided t-test over the folds' r,
    labelled as such. Recorded in attrs (and the sidecar's ``Statistics``): ``p_method``,
    ``n_permutations``, ``fdr_family`` ("layer x target", or "none" without FDR), ``fdr_q``
    (``statistics.q``, the level at which ``p_fdr`` is called significant by the reports),
    and all of them as the JSON attr ``statistics``.
    """
    ds = ds.copy()
    if "r_folds" in ds:
        if "p" not in ds:
            ds.attrs["n_permutations"] = 0
            ds["p"] = _fold_pvalues(ds["r_folds"])
        if "window" in ds.dims:  # models[].context_words a list: each target's window chosen with its layer
            ds = choose_windows(ds)
        p = ds["p"].transpose("layer", "target").values
        p_fdr = np.asarray(fdr_bh(p.ravel())).reshape(p.shape) if fdr else p.copy()
        ds["p_fdr"] = (("layer", "target"), p_fdr)
        if "baseline_r" in ds:
            ds["delta_r"] = ds["r"] - ds["baseline_r"]
        ds = layer_uncertainty(ds, q=q)  # issue 14: p_best and the credible set from the held-out block sums
    pvalues.record(ds, q, fdr and "r_folds" in ds)  # p_method, n_permutations, fdr_family, fdr_q
    if ceiling is not None and "r" in ds:
        c = np.asarray(ceiling, dtype=np.float64)
        if c.shape != (ds.sizes["target"],):
            raise ShapeMismatchError(f"ceiling has shape {c.shape}, expected ({ds.sizes['target']},)")
        ds["ceiling"] = (("target",), c)
        with np.errstate(invalid="ignore", divide="ignore"):
            ds["r_norm"] = ds["r"] / xr.where(ds["ceiling"] > 0, ds["ceiling"], np.nan)
    return ds


def align_model(
    recording: xr.DataArray,
    stimulus: pd.DataFrame,
    encoder,
    methods: Sequence[str] = ("encoding", "rsa"),
    *,
    layers: Sequence[int] | str | None = None,
    ceiling=None,
    fdr: bool = True,
    model_label: str | None = None,
    subject: str | None = None,
    task: str | None = None,
    settings: Mapping[str, Any] | None = None,
    **options: Any,
) -> AlignmentResult:
    """Score every layer of a language model against one recording.

    Parameters
    ----------
    recording : Recording
        (time, target) neural data, attrs ``modality`` and ``tr``/``sfreq``.
    stimulus : Stimulus
        The word table on the recording's clock.
    encoder : HFEncoder or Activations
        Anything with ``.encode(stimulus) -> Activations``, or the Activations.
    methods : sequence of {"encoding", "rsa"}
    layers : list of int or "all", optional
    ceiling : array (n_targets,), optional
        Noise ceiling per target; adds ``r_norm`` = r / ceiling.
    fdr : bool
        Benjamini-Hochberg over layer x target for ``p_fdr``.
    **options
        Passed to :func:`score_chunk`: ``alignment`` ("auto", "lanczos", "hrf",
        "word", "epochs"), ``delays`` (samples), ``window``, ``trim``, ``tmin``,
        ``tmax`` (s), ``cv`` ("contiguous", "leave_one_run_out", "group"),
        ``n_folds``, ``cv_column``, ``inner_cv``, ``alphas``, ``baseline_penalty``, ``baseline``
        (n_samples, q), ``baseline_delays``, ``regions`` (name -> target indices
        for RSA), ``rsa_options``, ``permutations`` (shifts of the p-value null, 0 = fold
        t-test) and ``seed``.

    Returns
    -------
    AlignmentResult
        Dataset with dims layer x target (+ fold, region); see :mod:`.result`.
    """
    bad = [m for m in methods if m not in SCORING_METHODS]
    if bad or not methods:
        raise InputError(f"methods {list(methods)} must be drawn from 'encoding', 'rsa'")
    acts = select_activations(encoder, stimulus, layers)
    ds = score_chunk(recording, stimulus, acts, methods=methods, **options)
    ds = finalize(ds, ceiling=ceiling, fdr=fdr)
    return AlignmentResult.from_dataset(annotate(ds, recording, acts, subject=subject, task=task,
                                                 model=model_label, settings=settings or {"methods": list(methods), **{k: v for k, v in options.items() if k not in ("baseline", "regions")}}))


def annotate(ds, recording, acts=None, *, subject=None, task=None, model=None, settings=None, config_hash=None):
    """Attach identity, geometry, settings and versions to a result."""

    ds.attrs["subject"] = str(subject or recording.attrs.get("subject", "01"))
    ds.attrs["task"] = str(task or recording.attrs.get("task", "task"))
    name = model or (acts.attrs.get("model_label") if acts is not None else None) or "model"
    ds.attrs["model"] = str(name)
    ds.attrs["settings"] = json.dumps(settings or {}, sort_keys=True, default=str)
    if config_hash:
        ds.attrs["config_hash"] = config_hash
    ds.attrs["versions"] = json.dumps({"brainalign": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
                                       "scikit-learn": sklearn.__version__, "xarray": xr.__version__,
                                       "nibabel": nibabel.__version__}, sort_keys=True)
    copy_geometry(ds, recording)
    if acts is not None:
        ds.attrs["model_source"] = str(acts.attrs.get("model", acts.attrs.get("model_name", "")))
    return ds


__all__ = ["align_model", "score_chunk", "finalize", "merge_chunks", "annotate", "select_activations", "AlignmentResult"]
