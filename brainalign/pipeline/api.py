"""``align_model``: score every layer of a model against one recording.

The Python face of the pipeline. It puts word features on the neural clock
(:mod:`brainalign.align`), fits cross-validated ridge encoding models
(:mod:`brainalign.encoding`) and compares representational geometries
(:mod:`brainalign.rsa`), and returns an :class:`AlignmentResult`.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import AlignmentError, InputError, ShapeMismatchError
from .result import AlignmentResult, merge_chunks

DEFAULT_ALPHAS = tuple(10.0**k for k in range(-2, 11))


# ------------------------------------------------------------------ design matrices
def default_method(modality: str) -> str:
    """The alignment a modality gets with ``alignment="auto"``."""
    return {"fmri": "lanczos", "erp": "word"}.get(modality, "epochs")


def _zscore(a: np.ndarray) -> np.ndarray:
    """Column z-score ignoring NaN; NaN cells become 0 (the column mean)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    with np.errstate(invalid="ignore"):
        mu, sd = np.nanmean(a, 0), np.nanstd(a, 0)
    mu = np.nan_to_num(mu)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    return np.nan_to_num((a - mu) / sd)


def neural_samples(recording: xr.DataArray, stimulus: pd.DataFrame, method: str, *, tmin=0.2, tmax=0.6):
    """Y (n_samples, n_targets) and the run of each sample, for an alignment method."""
    if method in ("lanczos", "hrf"):
        return np.asarray(recording.values, dtype=np.float64), np.asarray(recording["run"].values)
    if method == "word":
        if recording.sizes["time"] != len(stimulus):
            raise ShapeMismatchError(
                f"alignment 'word' needs one recording row per word: {recording.sizes['time']} rows, "
                f"{len(stimulus)} words"
            )
        return np.asarray(recording.values, dtype=np.float64), np.asarray(stimulus["run"].values)
    if method == "epochs":
        from ..align import word_epochs

        ep = np.asarray(word_epochs(recording, stimulus, tmin, tmax))  # (n_words, n_targets, n_times)
        if ep.ndim != 3:
            raise AlignmentError(f"word_epochs returned shape {ep.shape}, expected (words, targets, times)")
        return np.nanmean(ep, axis=2), np.asarray(stimulus["run"].values)
    raise InputError(f"alignment method {method!r} is not one of lanczos, hrf, word, epochs")


def layer_design(features: np.ndarray, stimulus, recording, method: str, *, delays, window=3) -> np.ndarray:
    """Word features of one layer (n_words, p) -> design X (n_samples, p')."""
    if method in ("lanczos", "hrf"):
        from ..align import fmri_design

        kw = {"method": method, "delays": tuple(delays)}
        if method == "lanczos":
            kw["window"] = window
        return np.asarray(fmri_design(features, stimulus, recording, **kw), dtype=np.float64)
    return _zscore(features)


def baseline_design(baseline: pd.DataFrame | np.ndarray | None, runs: np.ndarray, delays=None) -> np.ndarray | None:
    """Baseline regressors (n_samples, q), z-scored, optionally FIR-delayed within runs."""
    if baseline is None:
        return None
    B = np.asarray(baseline, dtype=np.float64)
    if B.ndim == 1:
        B = B[:, None]
    if B.shape[0] != runs.shape[0]:
        raise ShapeMismatchError(f"baseline has {B.shape[0]} rows but the data have {runs.shape[0]} samples")
    if delays:
        from ..align import fir_delays

        B = np.asarray(fir_delays(B, runs, delays=tuple(delays)))
    return _zscore(B)


# --------------------------------------------------------------------------- CV
def make_outer_cv(kind: str, n_samples: int, runs: np.ndarray, n_folds: int = 5, groups=None):
    """Outer folds as a list of test-index arrays (contiguous, deterministic).

    kind : "contiguous" (k blocks in time order), "leave_one_run_out", or "group"
    (values of ``groups``; at most ``n_folds`` folds of whole groups, in order).
    """
    idx = np.arange(n_samples)
    if kind == "contiguous":
        if n_samples < n_folds:
            raise InputError(f"{n_samples} samples cannot make {n_folds} folds")
        return [np.asarray(b) for b in np.array_split(idx, n_folds)]
    if kind == "leave_one_run_out":
        labels = list(pd.unique(runs))
        if len(labels) < 2:
            raise InputError("cv 'leave_one_run_out' needs at least 2 runs; use 'contiguous' for one run")
        return [idx[runs == r] for r in labels]
    if kind == "group":
        if groups is None:
            raise InputError("cv 'group' needs a group per sample")
        groups = np.asarray(groups)
        labels = list(pd.unique(groups))
        if len(labels) < 2:
            raise InputError("cv 'group' needs at least 2 groups")
        parts = np.array_split(np.arange(len(labels)), min(n_folds, len(labels)))
        return [idx[np.isin(groups, [labels[i] for i in part])] for part in parts]
    raise InputError(f"cv kind {kind!r} is not one of contiguous, leave_one_run_out, group")


def _splits(test_folds, n):
    allidx = np.arange(n)
    return [(np.setdiff1d(allidx, t), t) for t in test_folds]


def _fit_scores(X, Y, test_folds, inner_cv, alphas, keep):
    """Nested CV on samples ``keep``; returns r_folds, alpha_folds (n_folds, n_targets)."""
    from ..encoding import cross_validated_scores

    Xk, Yk = X[keep], Y[keep]
    pos = np.full(keep.shape[0], -1)
    pos[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
    folds = [pos[t[keep[t]]] for t in test_folds]
    folds = [f for f in folds if f.size]
    res = cross_validated_scores(Xk, Yk, outer_cv=_splits(folds, Xk.shape[0]), inner_cv=inner_cv, alphas=np.asarray(alphas))
    return np.asarray(res.r_folds, dtype=np.float64), np.asarray(res.alpha_folds, dtype=np.float64)


#: Candidate (baseline, layer) band weights for ``baseline_penalty="banded"``: the
#: layer's penalty is 1, 9, 99 or 999 times the baseline's (and a ridge alpha grid on top).
BANDED_BASELINE_WEIGHTS = np.array([[0.5, 0.5], [0.9, 0.1], [0.99, 0.01], [0.999, 0.001]])


def _fit_scores_banded(B, X, Y, test_folds, inner_cv, alphas, keep):
    """Nested CV of baseline + layer as a two-band ridge (own penalty per band).

    Returns r_folds and the layer band's effective penalty per fold, both
    (n_folds, n_targets), like :func:`_fit_scores`.
    """
    from ..encoding import BandedRidgeCV

    Bk, Xk, Yk = B[keep], X[keep], Y[keep]
    pos = np.full(keep.shape[0], -1)
    pos[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
    folds = [f for f in (pos[t[keep[t]]] for t in test_folds) if f.size]
    r_f, a_f = [], []
    for train, test in _splits(folds, Xk.shape[0]):
        model = BandedRidgeCV(alphas=np.asarray(alphas), n_iter=BANDED_BASELINE_WEIGHTS, cv=inner_cv)
        model.fit([Bk[train], Xk[train]], Yk[train])
        r_f.append(np.asarray(model.score([Bk[test], Xk[test]], Yk[test]), dtype=np.float64))
        a_f.append(np.asarray(model.space_alphas_[1], dtype=np.float64))
    return np.stack(r_f), np.stack(a_f)


def _fold_pvalues(r_folds: np.ndarray) -> np.ndarray:
    """One-sided one-sample t-test of the per-fold r (layer, fold, target) against 0."""
    from scipy import stats

    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.ttest_1samp(r_folds, 0.0, axis=1, alternative="greater")
    p = np.asarray(t.pvalue, dtype=np.float64)
    return np.where(np.isfinite(p), p, 1.0)


# -------------------------------------------------------------------------- RSA
def _blocks(n: int, n_items: int) -> list[np.ndarray]:
    return [b for b in np.array_split(np.arange(n), min(n_items, n)) if b.size]


def _rsa_scores(X, Y, keep, regions: Mapping[str, np.ndarray], opts: Mapping[str, Any], word_level: bool):
    """RSA of model patterns X against neural patterns Y per region -> (n_regions,).

    Items are ``n_items`` contiguous blocks of samples (time points or words), each the
    mean pattern of its block. Items whose model or neural pattern is constant (e.g.
    silent stretches) are left out of that comparison.
    """
    from .. import rsa

    Xk, Yk = X[keep], Y[keep]
    blocks = _blocks(Xk.shape[0], int(opts.get("n_items", 200)))
    metric = opts.get("metric", "correlation")
    Xi = np.stack([Xk[b].mean(0) for b in blocks])
    ok_model = Xi.std(1) > 0
    out = []
    for name, cols in regions.items():
        if len(cols) < 2:
            out.append(np.nan)
            continue
        Yi = np.stack([Yk[b][:, cols].mean(0) for b in blocks])
        ok = ok_model & (Yi.std(1) > 0)
        if ok.sum() < 4:
            out.append(np.nan)
            continue
        model_rdm = _transform(np.asarray(rsa.rdm(Xi[ok], metric=metric)), opts)
        neural = _transform(np.asarray(rsa.rdm(Yi[ok], metric=metric)), opts)
        out.append(float(rsa.compare(model_rdm, neural, method=opts.get("compare", "spearman"))))
    return np.asarray(out, dtype=np.float64)


def _transform(d, opts):
    from .. import rsa

    kind = opts.get("transform", "none")
    if kind == "gt":
        return np.asarray(rsa.gt_transform(d, lower=opts.get("lower", 0.2), upper=opts.get("upper", 0.8)))
    if kind == "geodesic":
        return np.asarray(rsa.geodesic(d, lower=opts.get("lower", 0.2), upper=opts.get("upper", 0.8)))
    return d


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
    delays: Sequence[int] = (1, 2, 3, 4),
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
) -> xr.Dataset:
    """Raw scores for the layers in ``activations`` (no FDR, no ceiling): one task's work."""
    methods = tuple(methods)
    alphas = tuple(alphas) if alphas is not None else DEFAULT_ALPHAS
    modality = recording.attrs.get("modality", "fmri")
    method = default_method(modality) if alignment == "auto" else alignment
    Y, runs = neural_samples(recording, stimulus, method, tmin=tmin, tmax=tmax)
    n = Y.shape[0]
    keep = np.ones(n, dtype=bool)
    if method in ("lanczos", "hrf") and (trim[0] or trim[1]):
        from ..align import trim_mask

        keep = np.asarray(trim_mask(runs, int(trim[0]), int(trim[1])), dtype=bool)
    finite = np.all(np.isfinite(Y), axis=1)
    keep &= finite
    groups = None
    if cv == "group":
        if cv_column not in stimulus.columns:
            raise InputError(f"cv column {cv_column!r} is not a stimulus column ({', '.join(stimulus.columns)})")
        if method in ("lanczos", "hrf"):
            raise InputError("cv 'group' (stimulus column) needs word-level alignment ('word' or 'epochs')")
        groups = stimulus[cv_column].to_numpy()
    test_folds = make_outer_cv(cv, n, runs, n_folds=n_folds, groups=groups)
    B = baseline_design(baseline, runs, baseline_delays)
    layers = [int(x) for x in activations["layer"].values]
    targets = recording["target"].values
    n_t = Y.shape[1]
    regions = {k: np.asarray(v, dtype=int) for k, v in (regions or {"all": np.arange(n_t)}).items()}
    warns: list[str] = []
    data: dict[str, Any] = {}
    r_folds, a_folds, rsa_vals = [], [], []
    for li, layer in enumerate(layers):
        X = layer_design(np.asarray(activations.isel(layer=li).values, dtype=np.float64), stimulus, recording,
                         method, delays=delays, window=window)
        if X.shape[0] != n:
            raise ShapeMismatchError(f"layer {layer}: design has {X.shape[0]} rows, data have {n} samples")
        if "encoding" in methods:
            if B is not None and with_baseline and baseline_penalty == "banded":
                rf, af = _fit_scores_banded(B, X, Y, test_folds, inner_cv, alphas, keep)
            else:
                Xf = np.hstack([B, X]) if (B is not None and with_baseline) else X
                rf, af = _fit_scores(Xf, Y, test_folds, inner_cv, alphas, keep)
            r_folds.append(rf)
            a_folds.append(af)
        if "rsa" in methods:
            if len(regions) == 1 and n_t < 3:
                if not warns:
                    warns.append(f"RSA skipped: {n_t} target(s) are too few for a neural RDM")
                rsa_vals.append(np.full(len(regions), np.nan))
            else:
                rsa_vals.append(_rsa_scores(X, Y, keep, regions, rsa_options or {}, method not in ("lanczos", "hrf")))
    coords = {"layer": layers, "target": targets}
    if r_folds:
        rf = np.stack(r_folds)
        coords["fold"] = np.arange(rf.shape[1])
        data["r_folds"] = (("layer", "fold", "target"), rf)
        data["alpha"] = (("layer", "fold", "target"), np.stack(a_folds))
        data["r"] = (("layer", "target"), np.nanmean(rf, axis=1))
        if B is not None and fit_baseline:
            brf, _ = _fit_scores(B, Y, test_folds, inner_cv, alphas, keep)
            data["baseline_r_folds"] = (("fold", "target"), brf)
            data["baseline_r"] = (("target",), np.nanmean(brf, axis=0))
    if rsa_vals:
        coords["region"] = list(regions)
        data["rsa"] = (("layer", "region"), np.stack(rsa_vals))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(alignment=method, modality=modality, n_samples=int(keep.sum()), warnings=json.dumps(warns))
    return ds


def finalize(ds: xr.Dataset, *, ceiling=None, fdr: bool = True) -> xr.Dataset:
    """Across-layer statistics: fold p-values, FDR over layer x target, ceiling, delta r."""
    from ..encoding import fdr_bh

    ds = ds.copy()
    if "r_folds" in ds:
        if "p" not in ds:
            ds["p"] = (("layer", "target"), _fold_pvalues(ds["r_folds"].values))
        p = ds["p"].values
        q = np.asarray(fdr_bh(p.ravel())).reshape(p.shape) if fdr else p.copy()
        ds["p_fdr"] = (("layer", "target"), q)
        if "baseline_r" in ds:
            ds["delta_r"] = ds["r"] - ds["baseline_r"]
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
        for RSA), ``rsa_options``.

    Returns
    -------
    AlignmentResult
        Dataset with dims layer x target (+ fold, region); see :mod:`.result`.
    """
    bad = [m for m in methods if m not in ("encoding", "rsa")]
    if bad or not methods:
        raise InputError(f"methods {list(methods)} must be drawn from 'encoding', 'rsa'")
    acts = select_activations(encoder, stimulus, layers)
    ds = score_chunk(recording, stimulus, acts, methods=methods, **options)
    ds = finalize(ds, ceiling=ceiling, fdr=fdr)
    return AlignmentResult.from_dataset(annotate(ds, recording, acts, subject=subject, task=task,
                                                 model=model_label, settings=settings or {"methods": list(methods), **{k: v for k, v in options.items() if k not in ("baseline", "regions")}}))


def annotate(ds, recording, acts=None, *, subject=None, task=None, model=None, settings=None, config_hash=None):
    """Attach identity, geometry, settings and versions to a result."""
    from .. import __version__

    import nibabel, sklearn, scipy

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
    if hasattr(recording, "coords"):
        from .plan import _geometry

        _geometry(ds, recording)
    if acts is not None:
        ds.attrs["model_source"] = str(acts.attrs.get("model", acts.attrs.get("model_name", "")))
    return ds


__all__ = ["align_model", "score_chunk", "finalize", "merge_chunks", "make_outer_cv", "AlignmentResult"]
