"""Inference for RSA: bootstrap, leave-one-participant-out noise ceilings, permutations.

A model's score is the mean over participants of ``compare(model, participant)``
(rsatoolbox's convention). Everything is vectorised over samples and seeded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..data import PermutationResult
from ..errors import InputError, ShapeMismatchError
from . import _kernels as K
from ._checks import as_rdm_stack, make_rng, triu_vectors
from ._evaluate import evaluate
from .compare import check_method

OVER = ("both", "stimuli", "participants")


class NoiseCeiling(NamedTuple):
    """Leave-one-participant-out noise ceiling (similarity units of the method)."""

    lower: float
    upper: float


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap distribution of model scores.

    Attributes
    ----------
    method, over : str
        Comparison method and what was resampled.
    scores : ndarray (n_models,)
        Point estimates on the full data (mean over participants).
    participant_scores : ndarray (n_participants, n_models)
        Per-participant similarities on the full data.
    samples : ndarray (n_samples, n_models)
        Bootstrap scores.
    noise_ceiling : NoiseCeiling
        Point estimate on the full data.
    noise_ceiling_samples : ndarray (n_samples, 2) or None
        Lower and upper ceiling of each sample, when requested.
    ci_level : float
        Coverage of :attr:`ci` (percentile interval).
    participant_counts : ndarray (n_samples, n_participants)
        How often each participant was drawn in each sample (all ones when
        participants are not resampled).
    stimulus_draws : ndarray (n_samples, n_stimuli) of int, or None
        The stimuli drawn in each sample (None when stimuli are not resampled).
    """

    method: str
    over: str
    scores: np.ndarray
    participant_scores: np.ndarray
    samples: np.ndarray
    noise_ceiling: NoiseCeiling
    noise_ceiling_samples: np.ndarray | None
    ci_level: float = 0.95
    participant_counts: np.ndarray | None = None
    stimulus_draws: np.ndarray | None = None

    @property
    def ci(self) -> np.ndarray:
        """(n_models, 2) percentile interval of the bootstrap scores."""
        a = (1.0 - self.ci_level) / 2.0
        return np.nanquantile(self.samples, [a, 1.0 - a], axis=0).T

    @property
    def std(self) -> np.ndarray:
        """(n_models,) bootstrap standard error."""
        return np.nanstd(self.samples, axis=0, ddof=1)

    @property
    def p_best(self) -> np.ndarray:
        """(n_models,) fraction of samples in which each model scores highest (ties split)."""
        s = self.samples
        best = s == s.max(axis=1, keepdims=True)
        return (best / best.sum(axis=1, keepdims=True)).mean(axis=0)


def _stacks(data: Any, models: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    sd, _ = as_rdm_stack(data, "data")
    sm, single_m = as_rdm_stack(models, "models")
    if sd.shape[-1] != sm.shape[-1]:
        raise ShapeMismatchError(
            f"data RDMs cover {sd.shape[-1]} stimuli but model RDMs {sm.shape[-1]}; "
            "use the same stimuli in the same order"
        )
    return sd.astype(np.float64), sm.astype(np.float64), single_m


def _draw(rng: np.random.Generator, n_samples: int, n_part: int, n_stim: int, over: str):
    if over not in OVER:
        raise InputError(f"over={over!r} is unknown; choose one of {', '.join(OVER)}")
    if over in ("both", "participants"):
        draws = rng.integers(0, n_part, size=(n_samples, n_part))
        c = np.zeros((n_samples, n_part))
        np.add.at(c, (np.arange(n_samples)[:, None], draws), 1.0)
    else:
        c = np.ones((n_samples, n_part))
    stim = None
    if over in ("both", "stimuli"):
        stim = rng.integers(0, n_stim, size=(n_samples, n_stim))
        for _ in range(100):  # redraw the (rare) samples with < 3 distinct stimuli
            few = np.array([np.unique(r).size < 3 for r in stim])
            if not few.any():
                break
            stim[few] = rng.integers(0, n_stim, size=(int(few.sum()), n_stim))
    return c, stim


def noise_ceiling(data: Any, method: str = "spearman") -> NoiseCeiling:
    """Leave-one-participant-out noise ceiling of a group of RDMs.

    Upper bound: mean over participants of the similarity between a participant's
    RDM and the pooled RDM of all participants (it includes them); lower bound: the
    same with the pooled RDM of the other participants. Pooling: mean of unit
    (z-scored) vectors for pearson/cosine, of ranks for spearman/kendall_tau_a, of
    unit centred Gram matrices for cka (as rsatoolbox's ``boot_noise_ceiling``).

    Parameters
    ----------
    data : array, shape (n_participants, n, n), n_participants >= 2
    method : str
        As :func:`brainalign.rsa.compare`.
    """
    check_method(method)
    sd, _ = as_rdm_stack(data, "data")
    if sd.shape[0] < 2:
        raise InputError("a noise ceiling needs RDMs of at least 2 participants; got 1")
    sd = sd.astype(np.float64)
    _, nc = evaluate(sd, sd[:1], method, None, np.ones((1, sd.shape[0])), True)
    return NoiseCeiling(float(nc[0, 0]), float(nc[0, 1]))


def bootstrap(
    data: Any,
    models: Any,
    method: str = "spearman",
    *,
    over: str = "both",
    n_samples: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    noise_ceiling: bool = True,
) -> BootstrapResult:
    """Bootstrap model scores over stimuli and/or participants.

    A stimulus sample draws n stimuli with replacement; entries pairing a
    stimulus with its own duplicate are left out (never NaN), the remaining pairs
    count as often as they occur in the resampled RDM. A participant sample draws
    participants with replacement. Each sample's noise ceiling (if asked) is
    computed from the same draw, in the same vectorised pass.

    Parameters
    ----------
    data : array (n_participants, n, n)
        Participants' RDMs (one participant is allowed without a ceiling).
    models : array (n, n) or (n_models, n, n)
    method : str
        As :func:`brainalign.rsa.compare`.
    over : {"both", "stimuli", "participants"}
    n_samples : int
    seed : int
        Seed of :func:`numpy.random.default_rng`; same seed, same result.
    ci : float
        Coverage of the percentile interval ``result.ci``.
    noise_ceiling : bool
        Also compute the ceiling of each sample.

    Returns
    -------
    BootstrapResult
    """
    check_method(method)
    sd, sm, _ = _stacks(data, models)
    n_part, n = sd.shape[0], sd.shape[-1]
    if n_samples < 1:
        raise InputError(f"n_samples={n_samples}; pass a positive number of bootstrap samples")
    if not 0 < ci < 1:
        raise InputError(f"ci={ci} must lie strictly between 0 and 1")
    want_nc = bool(noise_ceiling) and n_part >= 2
    rng = make_rng(seed)
    c, stim = _draw(rng, int(n_samples), n_part, n, over)
    full, full_nc = evaluate(sd, sm, method, None, np.ones((1, n_part)), n_part >= 2)
    per, nc = evaluate(sd, sm, method, stim, c, want_nc)
    samples = np.einsum("bs,bsm->bm", c, per) / c.sum(axis=1, keepdims=True)
    point_nc = NoiseCeiling(float(full_nc[0, 0]), float(full_nc[0, 1])) if full_nc is not None \
        else NoiseCeiling(float("nan"), float("nan"))
    return BootstrapResult(
        method=method, over=over, scores=full[0].mean(axis=0), participant_scores=full[0],
        samples=samples, noise_ceiling=point_nc, noise_ceiling_samples=nc, ci_level=float(ci),
        participant_counts=c, stimulus_draws=stim,
    )


def permutation_test(
    data: Any,
    models: Any,
    method: str = "spearman",
    *,
    n_permutations: int = 1000,
    seed: int = 0,
) -> PermutationResult:
    """Test model scores against a null of permuted stimulus labels.

    Each permutation relabels the stimuli of the model RDM (rows and columns
    together) and recomputes the score (mean over participants of
    ``compare(model, participant)``). For pearson, spearman, cosine and cka a
    permutation is a gather of the model matrix and one dot product with the
    participants' pooled unit vector, done in batches.

    Parameters
    ----------
    data : array (n, n) or (n_participants, n, n)
    models : array (n, n) or (n_models, n, n)
    method, n_permutations, seed : see :func:`bootstrap`.

    Returns
    -------
    PermutationResult
        (:class:`brainalign.data.PermutationResult`, shared with the encoding
        test) one test per model, with the whole ``null`` and the
        ``permutations``; ``method`` is ``"stimulus_labels"``.
    """
    check_method(method)
    sd, sm, single_m = _stacks(data, models)
    n = sd.shape[-1]
    if n_permutations < 1:
        raise InputError(f"n_permutations={n_permutations}; pass a positive number")
    rng = make_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(int(n_permutations))])
    observed, _ = evaluate(sd, sm, method, None, np.ones((1, sd.shape[0])), False)
    observed = observed[0].mean(axis=0)
    null = np.empty((perms.shape[0], sm.shape[0]))
    if method == "kendall_tau_a":
        vd = triu_vectors(sd)
        iu, ju = np.triu_indices(n, k=1)
        for p, perm in enumerate(perms):
            vm = sm[:, perm[iu], perm[ju]]
            null[p] = K.kendall_tau_a(vd, vm).mean(axis=0)
    else:
        if method == "cka":
            A = K.unit_vectors(K.centred_gram(sd).reshape(sd.shape[0], -1), "cosine").mean(0).reshape(n, n)
            U = K.unit_vectors(K.centred_gram(sm).reshape(sm.shape[0], -1), "cosine").reshape(-1, n, n)
        else:
            iu, ju = np.triu_indices(n, k=1)
            A = np.zeros((n, n))
            A[iu, ju] = K.unit_vectors(triu_vectors(sd), method).mean(axis=0)
            U = np.zeros((sm.shape[0], n, n))
            U[:, iu, ju] = K.unit_vectors(triu_vectors(sm), method)
            U = U + np.swapaxes(U, 1, 2)
        step = max(1, int(2**25 // (n * n * max(sm.shape[0], 1))))
        for s in range(0, perms.shape[0], step):
            pp = perms[s:s + step]
            g = U[:, pp[:, :, None], pp[:, None, :]]  # (M, b, n, n)
            null[s:s + step] = np.einsum("mbij,ij->bm", g, A)
    p = (1.0 + (null >= observed - 1e-12).sum(axis=0)) / (1.0 + null.shape[0])
    mean, std = null.mean(axis=0), null.std(axis=0)
    if single_m:
        return PermutationResult(
            observed=float(observed[0]), p_value=float(p[0]), null_mean=float(mean[0]), null_std=float(std[0]),
            n_permutations=int(n_permutations), method="stimulus_labels", null=null[:, 0], permutations=perms,
        )
    return PermutationResult(
        observed=observed, p_value=p, null_mean=mean, null_std=std, n_permutations=int(n_permutations),
        method="stimulus_labels", null=null, permutations=perms,
    )


bootstrap_compare = bootstrap
