"""How sure is the layer choice? A block bootstrap of the held-out predictions (issue 14).

Nothing is refitted. While a layer is scored, its out-of-fold predictions are
reduced to sums over short contiguous **blocks** of held-out samples (blocks lie
inside one outer test fold and one run, :func:`heldout_blocks`): the sums of the
prediction ``p``, ``p**2`` and ``p*y`` per block and target (:func:`layer_moments`;
the data's own sums ``1, y, y**2`` are shared by every layer). A bootstrap draw
resamples each fold's blocks with replacement (stratified by fold, the same draw
for every layer and target, so the layers' errors keep their correlation), rebuilds
each fold's Pearson r from the resampled sums and averages over folds, which is
exactly how the reported ``r`` is made (with every block drawn once the draw gives
back ``r``). Resampling test blocks of fixed fitted models misses the variation
that refitting adds, so each target's draws are widened, around the observed r, by
the larger of 1 and the ratio of the fold-to-fold spread of the layer differences
to their bootstrap spread (:func:`fold_spread`). Over ``n_bootstrap`` seeded draws:

- ``p_best`` (layer, target): the share of draws in which the layer has the highest r;
- ``in_credible_set`` (layer, target): the layers not distinguishable from the best
  at ``level`` (:func:`credible_set`: it holds the true best layer with probability
  ``level`` or more when the bootstrap spread is right; the spread of a bootstrap of
  ``m`` blocks is widened by ``sqrt(m / (m - 1))``, :func:`spread_factor`);
- ``r_ci_low`` / ``r_ci_high`` (layer, target): percentile interval (``ci``) of r;
- the same for the mean r over targets (``summary`` "all", and "significant": the
  targets with ``p_fdr < q`` at some layer): ``summary_r``, ``summary_p_best``, ...

Sums are accumulated with numpy's own einsum loops (no BLAS reductions), so the
draws and everything derived from them are bit-identical for a seed, whatever
the thread count.
"""
from __future__ import annotations

import json
import warnings
from typing import Sequence

import numpy as np
import xarray as xr

from .windows import marginalize

#: Blocks per outer test fold (fewer when the fold is short) and their least length in samples.
BLOCKS_PER_FOLD = 5
MIN_BLOCK_SAMPLES = 5
#: Bootstrap draws, nominal level of the credible set, level of the r intervals.
N_BOOTSTRAP = 1000
#: Draws for results with more than LARGE_RESULT layer x target values (whole-brain voxel maps).
N_BOOTSTRAP_LARGE = 250
LARGE_RESULT = 130_000
LEVEL = 0.9
CI = 0.95
#: Result variables holding the block sums (dropped once the bootstrap is done).
MOMENT_VARS = ("heldout_moments", "heldout_y_moments")
#: Largest (draws x layers x targets) array held at once, in float64 elements.
_MAX_ELEMENTS = 4_000_000
_LOW = -1e3  # r given to a layer without one in the max-t test (finite, so quantiles stay defined)


def heldout_blocks(folds: Sequence[np.ndarray], runs: np.ndarray,
                   per_fold: int = BLOCKS_PER_FOLD, min_len: int = MIN_BLOCK_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Cut every outer test fold into contiguous blocks that never cross a run or a gap.

    Parameters
    ----------
    folds : sequence of int ndarray
        Test indices into the kept samples, one array per outer fold.
    runs : ndarray, shape (n_kept,)
        Run label of each kept sample.
    per_fold, min_len : int
        About ``per_fold`` blocks per fold, each at least ``min_len`` samples long
        (a shorter stretch is one block).

    Returns
    -------
    block : int ndarray, shape (n_kept,)
        Block of each sample (-1: in no test fold).
    block_fold : int ndarray, shape (n_blocks,)
        Fold of each block.
    """
    runs = np.asarray(runs)
    block = np.full(runs.shape[0], -1, dtype=np.int64)
    block_fold: list[int] = []
    for f, test in enumerate(folds):
        test = np.sort(np.asarray(test, dtype=np.int64))
        if test.size == 0:
            continue
        cut = np.flatnonzero((np.diff(test) != 1) | (runs[test[1:]] != runs[test[:-1]])) + 1
        segments = np.split(test, cut)
        for seg in segments:
            share = int(round(per_fold * seg.size / test.size))
            n = max(1, min(share, seg.size // min_len))
            for piece in np.array_split(seg, n):
                block[piece] = len(block_fold)
                block_fold.append(f)
    return block, np.asarray(block_fold, dtype=np.int64)


def _block_sums(values: np.ndarray, block: np.ndarray, n_blocks: int) -> np.ndarray:
    """Sum of the rows of ``values`` (n, t) per block -> (n_blocks, t), in sample order."""
    out = np.zeros((n_blocks, values.shape[1]), dtype=np.float64)
    ok = block >= 0
    np.add.at(out, block[ok], values[ok])
    return out


def _fold_centred(a: np.ndarray, block: np.ndarray, block_fold: np.ndarray) -> np.ndarray:
    """``a`` (n, t) minus its mean over each fold's held-out samples (r is shift-invariant per fold)."""
    out = np.asarray(a, dtype=np.float64).copy()
    fold_of = np.where(block >= 0, block_fold[np.maximum(block, 0)], -1)
    for f in np.unique(block_fold):
        rows = fold_of == f
        out[rows] -= out[rows].mean(0)
    return out


def y_moments(Y: np.ndarray, block: np.ndarray, block_fold: np.ndarray) -> np.ndarray:
    """Per-block sums of 1, y and y**2 of the data: (n_blocks, 3, n_targets)."""
    y = _fold_centred(Y, block, block_fold)
    n_b = block_fold.size
    ones = np.ones_like(y)
    return np.stack([_block_sums(ones, block, n_b), _block_sums(y, block, n_b), _block_sums(y * y, block, n_b)], 1)


def layer_moments(Y: np.ndarray, pred: np.ndarray, block: np.ndarray, block_fold: np.ndarray) -> np.ndarray:
    """Per-block sums of p, p**2 and p*y of one layer's out-of-fold predictions: (n_blocks, 3, n_targets).

    ``Y`` and ``pred`` are (n_kept, n_targets); non-finite predictions (a target
    constant in some fold) make that target's r NaN, as in the scorer.
    """
    y = _fold_centred(Y, block, block_fold)
    p = _fold_centred(pred, block, block_fold)
    n_b = block_fold.size
    return np.stack([_block_sums(p, block, n_b), _block_sums(p * p, block, n_b), _block_sums(p * y, block, n_b)], 1)


def bootstrap_weights(block_fold: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """How often each block is drawn, (n_boot, n_blocks): each fold's blocks resampled with replacement."""
    rng = np.random.default_rng(seed)
    w = np.zeros((n_boot, block_fold.size), dtype=np.float64)
    for f in np.unique(block_fold):
        idx = np.flatnonzero(block_fold == f)
        draws = rng.integers(0, idx.size, size=(n_boot, idx.size))
        for j in range(idx.size):
            w[np.arange(n_boot), idx[draws[:, j]]] += 1.0
    return w


def resampled_r(M: np.ndarray, Ym: np.ndarray, w: np.ndarray, block_fold: np.ndarray, *,
                per_fold: bool = False) -> np.ndarray:
    """Mean over folds of the fold r rebuilt from weighted block sums (``per_fold``: each fold's r).

    Parameters
    ----------
    M : ndarray, shape (n_layers, n_blocks, 3, n_targets)
        :func:`layer_moments` of each layer.
    Ym : ndarray, shape (n_blocks, 3, n_targets)
        :func:`y_moments`.
    w : ndarray, shape (n_draws, n_blocks)
        Block weights (all ones gives the observed r).

    Returns
    -------
    ndarray, shape (n_draws, n_layers, n_targets), or (n_draws, n_folds, n_layers, n_targets)
    """
    folds = np.unique(block_fold)
    out = np.zeros((w.shape[0], M.shape[0], M.shape[3]))
    each = []
    for f in folds:
        bl = np.flatnonzero(block_fold == f)  # numpy's own einsum loops (no BLAS): bit-identical for any thread count
        sp = np.einsum("bk,lkmt->blmt", w[:, bl], M[:, bl], optimize=False)
        sy = np.einsum("bk,kmt->bmt", w[:, bl], Ym[bl], optimize=False)
        n, y, yy = sy[:, None, 0], sy[:, None, 1], sy[:, None, 2]
        p, pp, py = sp[:, :, 0], sp[:, :, 1], sp[:, :, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            r_f = (n * py - p * y) / np.sqrt((n * pp - p * p) * (n * yy - y * y))
        out += r_f
        if per_fold:
            each.append(r_f)
    return np.stack(each, 1) if per_fold else out / folds.size


def fold_spread(r_folds: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """How much wider the layers' differences vary over folds than over the bootstrap draws; >= 1, (n_targets,).

    The bootstrap resamples test blocks of fixed fitted models, so it misses the
    variation that refitting on other training data adds; the fold-to-fold spread
    of the layer differences has both. The factor is ``sqrt`` of the ratio of the
    fold variance of the mean difference (``var_f(d_f) / n_folds``) to its bootstrap
    variance, averaged over layer pairs, and at least 1.

    Parameters
    ----------
    r_folds : ndarray, shape (n_folds, n_layers, n_targets)
    draws : ndarray, shape (n_draws, n_layers, n_targets)
    """
    n_l = r_folds.shape[1]
    if n_l < 2 or r_folds.shape[0] < 2:
        return np.ones(r_folds.shape[2])
    k, l = np.triu_indices(n_l, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        v_fold = np.nanvar(r_folds[:, k] - r_folds[:, l], axis=0, ddof=1) / r_folds.shape[0]
        v_boot = np.nanvar(draws[:, k] - draws[:, l], axis=0)
        ratio = np.nanmean(v_fold, 0) / np.nanmean(v_boot, 0)
    return np.sqrt(np.where(np.isfinite(ratio), np.maximum(ratio, 1.0), 1.0))


def credible_set(r_obs: np.ndarray, r_boot: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Layers not distinguishable from the best, at ``level``: bool (n_layers, n_targets).

    Layer ``l`` stays in the set unless some layer ``k`` beats it by more than the
    bootstrap allows: with ``d_kl = r_k - r_l`` and its bootstrap standard deviation
    ``s_kl``, ``l`` is dropped when ``max_k d_kl / s_kl`` exceeds the ``level``
    quantile of ``max_k (d*_kl - d_kl) / s_kl`` over the draws (a max-t test of
    "``l`` is the best", one per layer). The true best layer is dropped with
    probability at most ``1 - level`` when the bootstrap spread is right.

    Parameters
    ----------
    r_obs : ndarray, shape (n_layers, n_targets)
    r_boot : ndarray, shape (n_draws, n_layers, n_targets)
    """
    finite = np.isfinite(r_obs)
    ro = np.where(finite, r_obs, _LOW)  # a layer without r: far below, never a competitor with spread
    rb = np.where(np.isfinite(r_boot), r_boot, _LOW)
    d_obs = ro[:, None] - ro[None, :]  # (k, l, t)
    d_b = rb[:, :, None] - rb[:, None, :]
    sd = d_b.std(axis=0)
    den = np.where(sd > 0, sd, np.inf)  # no spread (k == l included): that pair counts as 0
    z = ((d_b - d_obs) / den).max(1)  # (draws, l, t)
    t_obs = (d_obs / den).max(0)  # (l, t)
    crit = np.quantile(z, level, axis=0)
    tied = ~(sd > 0).any(0)  # no spread to any other layer: keep only the observed best
    best = ro >= ro.max(axis=0, keepdims=True)
    return finite & np.where(tied, best, t_obs <= crit)


def _share_best(r: np.ndarray) -> np.ndarray:
    """Share of draws (axis 0) in which each layer (axis 1) has the highest r; (n_layers, ...)."""
    finite = np.isfinite(r).any(1)
    best = np.argmax(np.where(np.isfinite(r), r, -np.inf), axis=1)
    counts = np.stack([((best == l) & finite).sum(0) for l in range(r.shape[1])])
    n = finite.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, counts / np.maximum(n, 1), np.nan)


def _quantiles(x: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the draws (axis 0); NaN where a draw is NaN (a target without r)."""
    q = np.quantile(x, [(1 - ci) / 2, 1 - (1 - ci) / 2], axis=0)
    return q[0], q[1]


def _summary_sets(ds: xr.Dataset, q: float) -> dict[str, np.ndarray]:
    """Target sets whose mean r gets a layer choice: all targets, and those with p_fdr < q at some layer."""
    n_t = ds.sizes["target"]
    sets = {"all": np.ones(n_t, dtype=bool)}
    if "p_fdr" in ds:
        sig = np.asarray((ds["p_fdr"] < q).any("layer").values, dtype=bool)
        if sig.any():
            sets["significant"] = sig
    return sets


def spread_factor(block_fold: np.ndarray) -> float:
    """``sqrt(m / (m - 1))`` for ``m`` blocks per fold (harmonic mean): the resampled r's spread
    around the observed one is widened by it, since a bootstrap of ``m`` blocks has
    ``(m - 1) / m`` of the variance of a mean of ``m`` independent blocks."""
    m = np.bincount(block_fold)
    m = m[m > 0]
    hm = m.size / np.sum(1.0 / m) if m.size else 1.0
    return float(np.sqrt(hm / (hm - 1))) if hm > 1 else 1.0


def bootstrap_layers(M: np.ndarray, Ym: np.ndarray, block_fold: np.ndarray, sets: dict[str, np.ndarray], *,
                     n_boot: int = N_BOOTSTRAP, seed: int = 0, ci: float = CI,
                     level: float = LEVEL) -> dict[str, np.ndarray]:
    """Per-target and per-set bootstrap of the layer choice from block sums.

    Returns ``p_best``, ``in_credible_set``, ``r_ci_low``, ``r_ci_high`` (n_layers,
    n_targets) and ``summary_r`` (observed), ``summary_p_best``,
    ``summary_in_credible_set``, ``summary_r_ci_low``, ``summary_r_ci_high``
    (n_layers, n_sets), sets in the order of ``sets``. Targets are processed in
    chunks, so memory stays bounded.
    """
    n_l, _, _, n_t = M.shape
    w = bootstrap_weights(block_fold, n_boot, seed)
    grow = spread_factor(block_fold)
    masks = np.stack(list(sets.values()), 1).astype(np.float64) if sets else np.zeros((n_t, 0))
    tot = np.zeros((n_boot, n_l, masks.shape[1]))
    cnt, obs_tot, obs_cnt = np.zeros_like(tot), np.zeros((1, n_l, masks.shape[1])), np.zeros((1, n_l, masks.shape[1]))
    out = {k: np.full((n_l, n_t), np.nan) for k in ("p_best", "r_ci_low", "r_ci_high")}
    out["in_credible_set"] = np.zeros((n_l, n_t), dtype=bool)
    step = max(1, _MAX_ELEMENTS // max(1, n_boot * n_l * max(n_l, 4)))
    for a in range(0, n_t, step):
        sl = slice(a, min(n_t, a + step))
        per_fold = resampled_r(M[..., sl], Ym[..., sl], np.ones((1, block_fold.size)), block_fold, per_fold=True)[0]
        obs = per_fold.mean(0)[None]
        r = obs + grow * (resampled_r(M[..., sl], Ym[..., sl], w, block_fold) - obs)  # (n_boot, n_l, chunk)
        r = obs + fold_spread(per_fold, r) * (r - obs)
        out["p_best"][:, sl] = _share_best(r)
        out["in_credible_set"][:, sl] = credible_set(obs[0], r, level)
        out["r_ci_low"][:, sl], out["r_ci_high"][:, sl] = _quantiles(r, ci)
        m = masks[sl]
        tot += _masked_sum(r, m)
        cnt += _masked_sum(np.isfinite(r).astype(np.float64), m)
        obs_tot += _masked_sum(obs, m)
        obs_cnt += _masked_sum(np.isfinite(obs).astype(np.float64), m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_r, mean_obs = tot / cnt, (obs_tot / obs_cnt)[0]
    out["summary_r"] = mean_obs
    out["summary_p_best"] = _share_best(mean_r)
    out["summary_in_credible_set"] = credible_set(mean_obs, mean_r, level)
    out["summary_r_ci_low"], out["summary_r_ci_high"] = _quantiles(mean_r, ci)
    return out


def _masked_sum(r: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Sum over targets of finite ``r`` (draws, layers, chunk) within each set ``m`` (chunk, sets), target by target."""
    out = np.zeros(r.shape[:2] + (m.shape[1],))
    vals = np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)
    for t in range(r.shape[2]):  # elementwise accumulation in target order: bit-identical
        out += vals[:, :, t, None] * m[t]
    return out


def layer_uncertainty(ds: xr.Dataset, *, q: float = 0.05, n_boot: int | None = None, seed: int | None = None,
                      level: float = LEVEL, ci: float = CI) -> xr.Dataset:
    """Add the bootstrap of the layer choice to a result that carries block sums; drop the sums.

    ``ds`` needs ``heldout_moments`` (layer, block, moment, target),
    ``heldout_y_moments`` (block, moment, target) and the coordinate
    ``block_fold`` (block), as :func:`brainalign.pipeline.scoring.score_prepared`
    writes them; without them ``ds`` is returned unchanged. ``seed`` defaults to
    the ``uncertainty_seed`` attr (``scoring.seed``), ``n_boot`` to :data:`N_BOOTSTRAP`
    (:data:`N_BOOTSTRAP_LARGE` above :data:`LARGE_RESULT` layer x target values). Adds ``p_best``,
    ``in_credible_set``, ``r_ci_low``, ``r_ci_high`` (layer, target), the
    ``summary_*`` variables (layer, summary) and attr ``layer_uncertainty`` (JSON:
    the method and its settings).
    """
    if not all(v in ds for v in MOMENT_VARS):
        return ds
    seed = int(ds.attrs.get("uncertainty_seed", 0) if seed is None else seed)
    grid = "window" in ds["heldout_moments"].dims  # a window grid: candidates are (window, layer) pairs
    M = ds["heldout_moments"].transpose(*(("window",) if grid else ()), "layer", "block", "moment", "target").values
    M = M.astype(np.float64).reshape((-1,) + M.shape[-3:])
    if n_boot is None:  # a whole-brain result: fewer draws (p_best to about +-0.03), recorded in the sidecar
        n_boot = N_BOOTSTRAP_LARGE if ds.sizes["target"] * M.shape[0] > LARGE_RESULT else N_BOOTSTRAP
    sets = _summary_sets(ds, q)
    block_fold = np.asarray(ds["block_fold"].values, dtype=np.int64)
    Ym = ds["heldout_y_moments"].transpose("block", "moment", "target").values.astype(np.float64)
    res = bootstrap_layers(M, Ym, block_fold, sets, n_boot=n_boot, seed=seed, ci=ci, level=level)
    out = ds.drop_vars([*MOMENT_VARS, "block_fold"]).drop_dims(["block", "moment"], errors="ignore")
    if grid:  # per-layer figures, each target at its window (pipeline/windows.py)
        windows = np.asarray(ds["window"].values)
        res = marginalize(res, windows.size, np.searchsorted(windows, ds["context_words"].values))
        out["summary_context_words"] = (("summary",), windows[res.pop("summary_window")])
    lt, ls = ("layer", "target"), ("layer", "summary")
    out = out.assign_coords(summary=list(sets))
    out["p_best"] = (lt, res["p_best"])
    out["in_credible_set"] = (lt, res["in_credible_set"])
    out["r_ci_low"], out["r_ci_high"] = (lt, res["r_ci_low"]), (lt, res["r_ci_high"])
    out["summary_n_targets"] = (("summary",), np.asarray([int(m.sum()) for m in sets.values()]))
    out["summary_r"] = (ls, res["summary_r"])
    out["summary_p_best"] = (ls, res["summary_p_best"])
    out["summary_in_credible_set"] = (ls, res["summary_in_credible_set"])
    out["summary_r_ci_low"], out["summary_r_ci_high"] = (ls, res["summary_r_ci_low"]), (ls, res["summary_r_ci_high"])
    out.attrs["layer_uncertainty"] = json.dumps({
        "method": "block bootstrap of the held-out predictions (blocks within outer test folds and runs, "
                  "resampled within each fold; no refit; draws widened by sqrt(m/(m-1)) and by the fold-to-fold "
                  "spread of the layer differences where it is larger); credible set: the layers not distinguishable from "
                  "the best by a bootstrap max-t test at the level",
        "spread_factor": spread_factor(block_fold),
        "n_bootstrap": int(n_boot), "seed": seed, "level": float(level), "ci": float(ci),
        "n_blocks": int(block_fold.size), "blocks_per_fold": BLOCKS_PER_FOLD, "min_block_samples": MIN_BLOCK_SAMPLES,
        "summaries": {"all": "mean r over all targets",
                      "significant": f"mean r over targets with p_fdr < {q:g} at some layer"}})
    out.attrs.pop("uncertainty_seed", None)
    return out


def participant_bootstrap(x: np.ndarray, *, n_boot: int = N_BOOTSTRAP, seed: int = 0, level: float = LEVEL,
                          ci: float = CI) -> dict[str, np.ndarray]:
    """The group's layer choice: participants resampled with replacement (seeded).

    Parameters
    ----------
    x : ndarray, shape (n_participants, n_layers)
        Each participant's mean r over targets per layer.

    Returns
    -------
    dict
        ``mean`` (n_layers,), ``p_best`` (n_layers,), ``in_credible_set`` (n_layers,)
        bool and ``ci_low`` / ``ci_high`` (n_layers,); the spread of the draws is
        widened by ``sqrt(n / (n - 1))`` as in :func:`spread_factor`.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        obs = np.nanmean(x, 0)
        draws = np.stack([np.nanmean(x[i], 0) for i in idx])  # (n_boot, n_layers)
    grow = float(np.sqrt(n / (n - 1))) if n > 1 else 1.0
    draws = obs + grow * (draws - obs)
    lo, hi = _quantiles(draws, ci)
    return {"mean": obs, "p_best": _share_best(draws[:, :, None])[:, 0],
            "in_credible_set": credible_set(obs[:, None], draws[:, :, None], level)[:, 0], "ci_low": lo, "ci_high": hi}
