"""Intrinsic dimension from nearest-neighbour distance ratios.

- TwoNN (Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 2017): mu_i = r2/r1, the ratio
  of each point's second to first nearest-neighbour distance, follows a Pareto law
  with shape d. ``fit="linear"`` (default, the paper's estimator and
  scikit-dimension's): sort mu, keep the smallest (1 - discard_fraction) N, and
  fit -log(1 - i/N) = d log mu_(i) through the origin by least squares (the
  largest ratio, whose -log(1 - N/N) is infinite, never enters the fit).
  ``fit="mle"``: the maximum likelihood estimate with the discarded ratios
  treated as censored, (k - 1) / (sum_{i<=k} log mu_(i) + (N - k) log mu_(k)).
- GRIDE (Denti, Doimo, Laio & Mira, Sci. Rep. 2022): mu_i = r_{n2}/r_{n1} with
  n2 = 2 n1 (the scale, explicit), maximum likelihood under the law
  f(mu) = d (mu^d - 1)^(n2-n1-1) / (B(n2-n1, n1) mu^((n2-1)d+1)); the score equation is
  solved with Brent's method. As DADApy does: N - 1 in place of N (``unbiased``)
  and ratios beyond 20 (q95 - q50) + q50 dropped as outliers (``outlier_cut``).

Distances are Euclidean: neighbours from scikit-learn's NearestNeighbors, their
distances recomputed directly (not from the GEMM expansion).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import brentq
from sklearn.neighbors import NearestNeighbors

from ..errors import DataQualityWarning, InputError
from . import _torch
from ._checks import as_patterns, check_choice, check_fraction, check_k

METHODS = ("twonn", "gride")


def neighbour_distances(x: Any, k: int) -> np.ndarray:
    """Sorted Euclidean distances of each row of ``x`` (n, p) to its k nearest others, (n, k).

    Neighbours are found with scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`
    (the point itself excluded, duplicates kept at distance 0); their distances are
    then recomputed directly as |x_i - x_j|, not from the GEMM expansion.
    """
    x = np.asarray(x, dtype=np.float64)
    k = check_k(k, x.shape[0])
    idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)
    d = np.stack([np.linalg.norm(x - x[idx[:, j]], axis=1) for j in range(k)], axis=1)
    return np.sort(d, axis=1)


def _twonn(log_mu: np.ndarray, fit: str, discard_fraction: float) -> float:
    n = log_mu.size
    keep = int(n * (1 - discard_fraction))
    if keep < 2:
        raise InputError(f"discard_fraction={discard_fraction} leaves {keep} of {n} ratios; pass a smaller one")
    lm = np.sort(log_mu)[:keep]
    if fit == "mle":
        return float((keep - 1) / (lm.sum() + (n - keep) * lm[-1]))
    keep = min(keep, n - 1)  # the largest ratio has F = 1, -log(0): never in the line fit
    y = -np.log1p(-np.arange(1, keep + 1) / n)
    return float(lm[:keep] @ y / (lm[:keep] @ lm[:keep]))


def _gride(log_mu: np.ndarray, n1: int, n2: int, unbiased: bool) -> float:
    n = log_mu.size
    m = (n - 1) if unbiased else n
    total = log_mu.sum()

    def score(d):
        return m / d + (n2 - n1 - 1) * np.sum(log_mu / -np.expm1(-d * log_mu)) - (n2 - 1) * total

    hi = 1.0
    while score(hi) > 0:
        hi *= 2.0
    return float(brentq(score, 1e-10, hi, xtol=1e-13, rtol=1e-14))


def log_ratios(X: Any, method: str = "twonn", *, n1: int = 1, outlier_cut: bool = True) -> np.ndarray:
    """The log distance ratios the estimators use: log(r2/r1) (TwoNN) or log(r_2n1/r_n1) (GRIDE).

    Points whose ratio is undefined or 1 (duplicates, ties) are dropped with a
    :class:`~brainalign.errors.DataQualityWarning`.
    """
    check_choice(method, "method", METHODS)
    if _torch.is_torch(X):
        device, dtype = _torch.placement(X)
        (x,), _ = _torch.as_patterns(X, "X", device, dtype, min_items=4)
    else:
        (x,), _ = as_patterns(X, "X", min_items=4)
    lo, hi = (1, 2) if method == "twonn" else (check_k(n1, x.shape[0] // 2, "n1"), 2 * n1)
    d = _torch.neighbour_distances(x, check_k(hi, x.shape[0])) if _torch.is_torch(x) else neighbour_distances(x, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        lm = np.log(d[:, hi - 1] / d[:, lo - 1])
    ok = np.isfinite(lm) & ((lm > 0) if method == "gride" else True)
    if not ok.all():
        warnings.warn(f"intrinsic_dimension: dropped {int((~ok).sum())} of {lm.size} points with zero or "
                      "tied neighbour distances (duplicate points)", DataQualityWarning, stacklevel=3)
        lm = lm[ok]
    if method == "gride" and outlier_cut and lm.size:
        mu = np.exp(lm)
        q95, q50 = np.percentile(mu, [95, 50])
        lm = lm[mu < 20 * (q95 - q50) + q50]
    if lm.size < 2:
        raise InputError(f"X (shape {x.shape}) leaves {lm.size} usable distance ratios; pass distinct points")
    return lm


def id_from_ratios(log_mu: np.ndarray, method: str = "twonn", *, n1: int = 1, fit: str = "linear",
                   discard_fraction: float = 0.1, unbiased: bool = True) -> float:
    """Intrinsic dimension from precomputed log ratios (see :func:`log_ratios`)."""
    if method == "twonn":
        check_choice(fit, "fit", ("linear", "mle"))
        return _twonn(np.asarray(log_mu, float), fit, check_fraction(discard_fraction, "discard_fraction",
                                                                        closed_high=False))
    return _gride(np.asarray(log_mu, float), n1, 2 * n1, unbiased)


def intrinsic_dimension(X: Any, method: str = "twonn", *, n1: int = 1, fit: str = "linear",
                        discard_fraction: float = 0.1, unbiased: bool = True,
                        outlier_cut: bool = True) -> float:
    """Intrinsic dimension of a point cloud (items as rows).

    Parameters
    ----------
    X : array, shape (n, p), or a stack (L, n, p) / sequence of (n, p_l) arrays
        Points (e.g. one layer's features for n stimuli), Euclidean geometry.
    method : {"twonn", "gride"}
    n1 : int
        GRIDE scale: ratios of the 2*n1-th to the n1-th neighbour distance (n1 = 1
        is the TwoNN ratio under GRIDE's likelihood). Ignored by TwoNN.
    fit : {"linear", "mle"}
        TwoNN estimator (see the module docstring). Ignored by GRIDE.
    discard_fraction : float in [0, 1)
        TwoNN: fraction of the largest ratios left out of the fit (censored for "mle").
    unbiased, outlier_cut : bool
        GRIDE: N - 1 in the likelihood score, and DADApy's outlier cut.

    Returns
    -------
    float
        The estimated dimension (dimensionless); an (L,) array for a stack (a tensor
        of the working dtype on the input's device for torch input, whose
        neighbour search then runs in torch there; the estimators run on the (n, k)
        distances in numpy).
    """
    if _torch.is_torch(X):
        device, dtype = _torch.placement(X)
        stack, single = _torch.as_patterns(X, "X", device, dtype, min_items=4)
    else:
        stack, single = as_patterns(X, "X", min_items=4)
    out = np.array([id_from_ratios(log_ratios(x, method, n1=n1, outlier_cut=outlier_cut), method, n1=n1, fit=fit,
                                   discard_fraction=discard_fraction, unbiased=unbiased) for x in stack])
    return _torch.as_result(out, single, X) if _torch.is_torch(X) else (float(out[0]) if single else out)


def intrinsic_dimension_ci(X: Any, method: str = "twonn", *, n_bootstrap: int = 200, level: float = 0.95,
                           seed: int = 0, **kwargs) -> tuple[float, float, float]:
    """Estimate with a percentile bootstrap interval over points' distance ratios.

    The ratios are computed once on all points (resampling points would create
    duplicates, whose ratios are undefined); each bootstrap sample redraws them
    with replacement and re-runs the estimator.

    Returns
    -------
    (estimate, low, high) : floats
    """
    if int(n_bootstrap) < 2:
        raise InputError(f"n_bootstrap={n_bootstrap}; pass at least 2")
    level = check_fraction(level, "level")
    lm = log_ratios(X, method, n1=kwargs.get("n1", 1), outlier_cut=kwargs.pop("outlier_cut", True))
    est = id_from_ratios(lm, method, **kwargs)
    rng = np.random.default_rng(seed)
    draws = np.array([id_from_ratios(lm[rng.integers(0, lm.size, lm.size)], method, **kwargs)
                      for _ in range(int(n_bootstrap))])
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return est, float(lo), float(hi)
