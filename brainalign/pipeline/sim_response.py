"""Response models of the simulated BOLD: kernels per voxel and impulse convolution.

Kernels live on a fine grid of step ``dt = tr / oversampling`` (``oversampling =
ceil(tr / 0.05)``, so ``dt <= 50 ms`` and every frame time is a grid point); the
sample ``k`` of a kernel is its value at lag ``k * dt`` seconds.

* ``"spm"`` / ``"glover"``: nilearn's ``spm_hrf`` / ``glover_hrf`` sampled at ``dt``
  (32 s long), one kernel for every voxel.
* ``"random"``: per voxel, ``gamma.pdf(t, peak / dispersion + 1, scale=dispersion)
  - ratio * gamma.pdf(t, undershoot / u_dispersion + 1, scale=u_dispersion)``
  (scipy.stats.gamma; the two modes sit at ``peak`` and ``undershoot`` seconds),
  ``0 <= t < 32`` s, scaled to unit sum; parameters drawn uniformly within
  :data:`RANDOM_BOUNDS`.
* ``"fir"``: per voxel, taps at 0, 1, ..., 16 s (a positive bump, an optional
  undershoot and smoothed wiggles; first and last tap 0), linearly interpolated
  onto the fine grid, scaled to unit peak.
"""
from __future__ import annotations

import numpy as np

RANDOM_BOUNDS = {"peak_s": (4.0, 7.0), "undershoot_s": (12.0, 18.0), "ratio": (0.1, 0.3),
                 "dispersion_s": (0.7, 1.3), "u_dispersion_s": (0.7, 1.3)}
FIR_TAPS_S = np.arange(17.0)  # 0..16 s
KERNEL_SECONDS = 32.0


def oversampling(tr: float) -> int:
    """Fine-grid samples per TR (``dt = tr / oversampling <= 0.05`` s)."""
    return max(1, int(np.ceil(tr / 0.05 - 1e-9)))


def canonical_kernel(model: str, tr: float) -> np.ndarray:
    """nilearn's ``"spm"`` or ``"glover"`` HRF at ``dt = tr / oversampling(tr)``; shape (n_lags,)."""
    from nilearn.glm.first_level import glover_hrf, spm_hrf

    fn = spm_hrf if model == "spm" else glover_hrf
    return np.asarray(fn(tr, oversampling(tr), time_length=KERNEL_SECONDS), dtype=float).ravel()


def double_gamma(lags: np.ndarray, peak_s, undershoot_s, ratio, dispersion_s, u_dispersion_s) -> np.ndarray:
    """Double-gamma kernel(s) at ``lags`` (s); parameters scalars or (k,) arrays -> (n_lags, k), unit sum."""
    from scipy.stats import gamma

    t = np.asarray(lags, dtype=float)[:, None]
    p = [np.atleast_1d(np.asarray(v, dtype=float))[None, :] for v in (peak_s, undershoot_s, ratio, dispersion_s, u_dispersion_s)]
    peak, under, rat, disp, udisp = p
    h = gamma.pdf(t, peak / disp + 1.0, scale=disp) - rat * gamma.pdf(t, under / udisp + 1.0, scale=udisp)
    return h / h.sum(0, keepdims=True)


def draw_random_hrf(n: int, rng: np.random.Generator) -> dict:
    """Per-voxel double-gamma parameters drawn uniformly within :data:`RANDOM_BOUNDS`; lists of length n."""
    return {k: rng.uniform(lo, hi, size=n).tolist() for k, (lo, hi) in RANDOM_BOUNDS.items()}


def draw_fir(n: int, rng: np.random.Generator) -> list[list[float]]:
    """Per-voxel FIR taps at :data:`FIR_TAPS_S`: n lists of 17 values (unit peak, zero at 0 and 16 s)."""
    t = FIR_TAPS_S
    peak = rng.uniform(3.0, 8.0, n)[:, None]
    width = rng.uniform(1.0, 2.5, n)[:, None]
    under_at = rng.uniform(10.0, 15.0, n)[:, None]
    under = rng.uniform(0.0, 0.4, n)[:, None]
    wiggle = 0.15 * rng.standard_normal((n, t.size))
    wiggle = np.apply_along_axis(lambda w: np.convolve(w, [0.25, 0.5, 0.25], mode="same"), 1, wiggle)
    taps = np.exp(-0.5 * ((t - peak) / width) ** 2) - under * np.exp(-0.5 * ((t - under_at) / 2.0) ** 2) + wiggle
    taps[:, 0] = 0.0
    taps[:, -1] = 0.0
    taps /= np.abs(taps).max(1, keepdims=True)
    return taps.tolist()


def fir_kernels(taps, tr: float) -> np.ndarray:
    """FIR taps (k, 17) linearly interpolated at the fine lags over 0..16 s -> (n_lags, k)."""
    dt = tr / oversampling(tr)
    lags = np.arange(int(np.floor(FIR_TAPS_S[-1] / dt + 1e-9)) + 1) * dt
    return np.stack([np.interp(lags, FIR_TAPS_S, np.asarray(row, dtype=float)) for row in taps], axis=1)


def voxel_kernels(response: str, n: int, tr: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Kernels for ``n`` voxels and the record that regenerates them.

    Returns
    -------
    kernels : ndarray, shape (n_lags, n) or (n_lags, 1)
        One column per voxel (a single shared column for spm / glover).
    record : dict
        JSON-able: the model, ``dt_s`` and, for random / fir, the per-voxel parameters.
    """
    dt = tr / oversampling(tr)
    rec: dict = {"model": response, "dt_s": dt}
    if response in ("spm", "glover"):
        return canonical_kernel(response, tr)[:, None], rec
    if response == "random":
        params = draw_random_hrf(n, rng)
        lags = np.arange(int(round(KERNEL_SECONDS / dt))) * dt
        rec.update(params=params, bounds={k: list(v) for k, v in RANDOM_BOUNDS.items()})
        return double_gamma(lags, **params), rec
    taps = draw_fir(n, rng)
    rec.update(taps_s=FIR_TAPS_S.tolist(), taps=taps)
    return fir_kernels(taps, tr), rec


def impulse_bold(amplitudes: np.ndarray, onsets: np.ndarray, n_vol: int, tr: float, kernels: np.ndarray) -> np.ndarray:
    """Word impulses on the fine grid, convolved with each voxel's kernel, sampled at ``k * tr``.

    Parameters
    ----------
    amplitudes : ndarray, shape (n_words, k)
        Per-word readout amplitude of each voxel.
    onsets : ndarray, shape (n_words,)
        Word onsets (s, the run's clock); each is rounded to the nearest grid point.
    n_vol : int
    tr : float
        Repetition time (s).
    kernels : ndarray, shape (n_lags, k) or (n_lags, 1)

    Returns
    -------
    ndarray, shape (n_vol, k)
    """
    from scipy.signal import fftconvolve

    os_ = oversampling(tr)
    n_fine = n_vol * os_
    imp = np.zeros((n_fine, amplitudes.shape[1]))
    idx = np.clip(np.rint(np.asarray(onsets, dtype=float) / (tr / os_)).astype(int), 0, n_fine - 1)
    np.add.at(imp, idx, amplitudes)
    return fftconvolve(imp, kernels, axes=0)[:n_fine:os_]
