"""Noise of the simulated recordings, scaled so that SNR keeps its meaning.

The planted signal of every voxel is z-scored over time (unit s.d.), and the
noise of every voxel has unit s.d., so ``snr`` is the signal s.d. over the noise
s.d. per voxel. ``("white",)`` alone is the classic generator's unit-variance
Gaussian draws (unit s.d. in expectation, not rescaled, so the classic output is
unchanged). Any other mix is built run by run (runs independent), each of the
coloured components ``white``, ``ar1``, ``pink`` standardised per voxel, plus
``drift`` (s.d. :data:`DRIFT_SD` of a base component) and ``spikes`` (amplitude
4-8 base s.d.), and the sum rescaled to unit s.d. per voxel.

* ``ar1``: ``x[t] = phi * x[t-1] + e[t]`` (scipy.signal.lfilter, 100-sample burn-in).
* ``pink``: white noise shaped in the Fourier domain to power ~ 1/f (zero mean).
* ``drift``: a linear trend plus random cosines of frequency ``k / (2 T)`` below
  :data:`DRIFT_MAX_HZ` (``T`` the run length, at least the ``k = 1`` cosine).
* ``spikes``: about one motion-like spike per 100 volumes (at least one per run),
  shared by all voxels with a per-voxel loading ~ N(0, 1), decaying by half on
  the next frame.
"""
from __future__ import annotations

import numpy as np

DRIFT_SD = 0.7
DRIFT_MAX_HZ = 1.0 / 128.0
SPIKE_AMPLITUDE = (4.0, 8.0)


def _std(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    sd = a.std(0)
    sd[sd == 0] = 1.0
    return a / sd


def ar1(n: int, k: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    """AR(1) series, shape (n, k), unit innovation variance."""
    from scipy.signal import lfilter

    burn = 100
    e = rng.standard_normal((n + burn, k))
    return lfilter([1.0], [1.0, -phi], e, axis=0)[burn:]


def pink(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """1/f (power) noise, shape (n, k), by Fourier shaping of white noise."""
    spec = np.fft.rfft(rng.standard_normal((n, k)), axis=0)
    f = np.fft.rfftfreq(n)
    scale = np.zeros_like(f)
    scale[1:] = 1.0 / np.sqrt(f[1:])
    return np.fft.irfft(spec * scale[:, None], n=n, axis=0)


def drift(n: int, k: int, tr: float, rng: np.random.Generator) -> np.ndarray:
    """Slow drifts, shape (n, k): linear trend plus cosines below :data:`DRIFT_MAX_HZ`."""
    t = np.arange(n) * tr
    span = n * tr
    n_cos = max(1, int(np.floor(DRIFT_MAX_HZ * 2 * span)))
    basis = [np.linspace(-1.0, 1.0, n)] + [np.cos(np.pi * j * (t + tr / 2) / span) for j in range(1, n_cos + 1)]
    B = np.stack(basis, axis=1)
    return B @ rng.standard_normal((B.shape[1], k))


def spikes(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Motion-like spikes, shape (n, k), in units of a base s.d.; and their frames."""
    n_sp = max(1, int(round(n / 100)))
    candidates = np.arange(1, n - 1) if n > 2 else np.arange(n)  # not the first or last frame when possible
    frames = np.sort(rng.choice(candidates, size=min(n_sp, candidates.size), replace=False))
    out = np.zeros((n, k))
    for f in frames:
        amp = rng.uniform(*SPIKE_AMPLITUDE) * rng.standard_normal(k)
        out[f] += amp
        if f + 1 < n:
            out[f + 1] += 0.5 * amp
    return out, [int(f) for f in frames]


def _run_noise(components, n: int, k: int, tr: float, phi: float, rng) -> tuple[np.ndarray, dict]:
    base = [c for c in components if c in ("white", "ar1", "pink")]
    total = np.zeros((n, k))
    for c in base:
        x = rng.standard_normal((n, k)) if c == "white" else ar1(n, k, phi, rng) if c == "ar1" else pink(n, k, rng)
        total += _std(x)
    unit = np.sqrt(max(1, len(base)))  # the s.d. of the base sum
    info: dict = {}
    if "drift" in components:
        total += DRIFT_SD * unit * _std(drift(n, k, tr, rng))
    if "spikes" in components:
        sp, frames = spikes(n, k, rng)
        total += unit * sp
        info["spike_frames"] = frames
    return total, info


def make_noise(components, n_vol: int, n_runs: int, k: int, tr: float, phi: float,
               rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Noise for ``n_runs`` runs of ``n_vol`` frames and ``k`` voxels, unit s.d. per voxel.

    Returns
    -------
    noise : ndarray, shape (n_runs * n_vol, k)
    realised : dict
        What was drawn beyond the settings (spike frames per run, 1-based runs).
    """
    components = tuple(components)
    if components == ("white",):
        return rng.standard_normal((n_runs * n_vol, k)), {}
    parts, realised = [], {}
    for r in range(n_runs):
        x, info = _run_noise(components, n_vol, k, tr, phi, rng)
        parts.append(x)
        if info:
            realised[str(r + 1)] = info
    return _std(np.concatenate(parts, axis=0)), realised


def settings(components, phi: float) -> dict:
    """The noise settings as written into the truth file."""
    scaling = ("unit-variance Gaussian draws (unit s.d. in expectation)" if tuple(components) == ("white",)
               else "rescaled to unit s.d. per voxel")
    d: dict = {"components": list(components), "scaling": f"{scaling}; snr = signal s.d. / noise s.d."}
    if "ar1" in components:
        d["ar_phi"] = float(phi)
    if "drift" in components:
        d["drift"] = {"max_hz": DRIFT_MAX_HZ, "sd_relative_to_base": DRIFT_SD}
    if "spikes" in components:
        d["spikes"] = {"per_100_volumes": 1, "amplitude_base_sd": list(SPIKE_AMPLITUDE), "decay_next_frame": 0.5}
    return d
