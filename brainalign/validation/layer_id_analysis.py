"""One simulated dataset, many analysis recipes: which layer does each name? (issue 14)

An analysis is an (alignment, context window, selection method) triple. The
alignments put one layer's word features on the frame clock:

- ``fir4``: Lanczos resampling + FIR delays 1-4 TRs (the pipeline's default);
- ``hrf``: convolution with nilearn's SPM HRF, no delay;
- ``hrf_fir4``: the SPM HRF *and* FIR delays 1-4 (what ``alignment: hrf`` gives
  today, since ``alignment.delays`` keeps its default [1, 2, 3, 4]);
- ``hrf_deriv``: the SPM HRF and its time derivative (nilearn's ``spm_time_derivative``,
  nilearn's "spm + derivative" model), both columns per feature;
- ``fir4_pca``: ``fir4`` on the first :data:`PCA_COMPONENTS` principal components
  of each layer's word features (every layer gets the same number of columns);
- ``fir4_banded``: ``fir4`` with one ridge band per delay
  (:class:`brainalign.encoding.BandedRidgeCV`, ``bands=[p] * 4``).

Selection methods: ``argmax_r`` (arg-max of the region's mean held-out r, the
pipeline's default), ``single_r`` (the same from :mod:`brainalign.encoding.layer_id`),
``pbest`` (arg-max of the bootstrap probability of being best) and ``set_shallowest``
(the shallowest layer of the 90 % credible set: a parsimony rule against the depth
bias), both from :func:`brainalign.pipeline.uncertainty.bootstrap_layers`; ``rsa``
and ``trsa_gt_<l>_<u>`` (Spearman RDM similarity, plain or GT-transformed), and on
request the geodesic and ``select_gt`` tRSA methods of :mod:`.layer_id_trsa`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: Principal components kept per layer by ``fir4_pca``.
PCA_COMPONENTS = 32
DELAYS = (1, 2, 3, 4)
ALIGNMENTS = ("fir4", "hrf", "hrf_fir4", "hrf_deriv", "fir4_pca", "fir4_banded")
#: Alignments whose RDMs are also compared (RSA / tRSA).
RSA_ALIGNMENTS = ("fir4", "hrf")
TRSA_SETTINGS = ((0.2, 0.8), (0.05, 0.5))
N_FOLDS = 5
N_BOOT = 500
BANDED_ITER = 4


def layer_design(feats: np.ndarray, stim, rec, alignment: str) -> tuple[np.ndarray, list[int] | None]:
    """One layer's word features (n_words, p) -> design (n_frames, p') and its bands (or None).

    Parameters
    ----------
    feats : ndarray, shape (n_words, p)
    stim, rec : Stimulus, Recording
    alignment : one of :data:`ALIGNMENTS`
    """
    from ..align import fmri_design

    def fd(f, **kw):
        return np.asarray(fmri_design(f, stim, rec, dtype=np.float64, **kw), dtype=np.float64)

    if alignment in ("fir4", "fir4_banded"):
        X = fd(feats, method="lanczos", delays=DELAYS)
        return X, ([feats.shape[1]] * len(DELAYS) if alignment == "fir4_banded" else None)
    if alignment == "fir4_pca":
        from sklearn.decomposition import PCA

        k = min(PCA_COMPONENTS, *feats.shape)
        return fd(PCA(n_components=k, svd_solver="full").fit_transform(feats), method="lanczos", delays=DELAYS), None
    if alignment == "hrf":
        return fd(feats, method="hrf", delays=(0,)), None
    if alignment == "hrf_fir4":
        return fd(feats, method="hrf", delays=DELAYS), None
    if alignment == "hrf_deriv":
        from nilearn.glm.first_level import spm_time_derivative

        return np.hstack([fd(feats, method="hrf", delays=(0,)),
                          fd(feats, method="hrf", delays=(0,), hrf_model=spm_time_derivative)]), None
    raise ValueError(f"alignment {alignment!r} is not one of {ALIGNMENTS}")


def region_means(scores: np.ndarray, groups: np.ndarray, regions: Sequence) -> np.ndarray:
    """(n_layers, n_targets) -> (n_layers, n_regions): the mean over each region's targets."""
    return np.stack([np.nanmean(scores[:, groups == g], axis=1) for g in regions], axis=1)


def _splits(folds, n):
    return [(np.setdiff1d(np.arange(n), te), te) for te in folds]


def _banded_heldout(X, Y, folds, bands, alphas):
    """Held-out predictions and fold-mean r of a per-delay banded ridge (one fit per outer fold)."""
    from ..encoding import BandedRidgeCV, pearson_r

    pred = np.zeros_like(Y)
    r = np.zeros(Y.shape[1])
    for tr, te in _splits(folds, Y.shape[0]):
        est = BandedRidgeCV(alphas=alphas, n_iter=BANDED_ITER, cv=N_FOLDS, bands=bands, random_state=0,
                            backend="numpy", dtype="float64")
        pred[te] = est.fit(X[tr], Y[tr]).predict(X[te])
        r += np.nan_to_num(pearson_r(Y[te], pred[te])) / len(folds)
    return pred, r


def encoding_scores(designs, bands, Y, folds, alphas) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer held-out r (n_layers, n_targets) and predictions (n_layers, n, n_targets)."""
    from ..encoding import cross_validated_scores

    rs, preds = [], []
    for X in designs:
        if bands is None:
            res = cross_validated_scores(X, Y, outer_cv=_splits(folds, Y.shape[0]), inner_cv=N_FOLDS,
                                         alphas=alphas, return_predictions=True)
            rs.append(res.r)
            preds.append(res.predictions)
        else:
            p, r = _banded_heldout(X, Y, folds, bands, alphas)
            rs.append(r)
            preds.append(p)
    return np.stack(rs), np.stack(preds)


def bootstrap_choice(preds, Y, folds, runs, groups, regions, *, n_boot=N_BOOT, seed=0, level=0.9) -> dict:
    """Region-level p_best and credible sets from the pipeline's block bootstrap.

    Returns ``p_best`` and ``in_set`` (n_layers, n_regions).
    """
    from ..pipeline.uncertainty import bootstrap_layers, heldout_blocks, layer_moments, y_moments

    block, block_fold = heldout_blocks(folds, runs)
    Ym = y_moments(Y, block, block_fold)
    M = np.stack([layer_moments(Y, p, block, block_fold) for p in preds])
    sets = {str(g): np.asarray(groups == g) for g in regions}
    res = bootstrap_layers(M, Ym, block_fold, sets, n_boot=n_boot, seed=seed, level=level)
    return {"p_best": res["summary_p_best"], "in_set": res["summary_in_credible_set"]}


def region_rdms(designs, Y, groups, regions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlation-distance RDMs over volumes: layers (L, n, n), regions (R, n, n), and the volumes used.

    Volumes where some layer's design row is constant (no words yet) have no
    correlation distance and are left out (``ok``, boolean over volumes).
    """
    from .. import rsa

    ok = np.all([np.ptp(X, axis=1) > 0 for X in designs], axis=0)
    model = np.asarray(rsa.rdm(np.stack([X[ok] for X in designs]), metric="correlation"))
    brains = np.stack([np.asarray(rsa.rdm(Y[ok][:, groups == g], metric="correlation")) for g in regions])
    return model, brains, ok


def rsa_choices(designs, Y, groups, regions, *, topology: bool = False, seed: int = 0) -> dict[str, dict]:
    """Arg-max layer per region of plain and GT-transformed RDM similarity: name -> {"chosen", ...}.

    With ``topology``, also the geodesic and ``select_gt`` methods of
    :mod:`.layer_id_trsa` (``seed``: their simulated participants).
    """
    from .. import rsa

    model, brains, ok = region_rdms(designs, Y, groups, regions)
    out = {"rsa": {"chosen": np.argmax(np.asarray(rsa.compare(model, brains, method="spearman")), axis=0)}}
    for lo, up in TRSA_SETTINGS:
        m = np.stack([np.asarray(rsa.gt_transform(x, lower=lo, upper=up)) for x in model])
        b = np.stack([np.asarray(rsa.gt_transform(x, lower=lo, upper=up)) for x in brains])
        out[f"trsa_gt_{lo:g}_{up:g}"] = {"chosen": np.argmax(np.asarray(rsa.compare(m, b, method="spearman")), axis=0)}
    if topology:
        from .layer_id_trsa import topology_choices

        out.update(topology_choices(model, brains, [X[ok] for X in designs], seed=seed))
    return out


def analyse_alignment(feats: list[np.ndarray], stim, rec, Y, groups, alignment: str, *, rsa_too: bool,
                      single_too: bool, seed: int = 0, n_boot: int = N_BOOT, level: float = 0.9,
                      topology: bool = False) -> dict[str, dict]:
    """All selection methods on one alignment: method -> {"chosen": (n_regions,), optional "in_set", "p_best"}.

    ``chosen`` holds indices into the layer list; ``in_set`` (n_layers, n_regions) bool.
    ``topology`` (with ``rsa_too``): also the tRSA methods of :mod:`.layer_id_trsa`.
    """
    from ..encoding import DEFAULT_ALPHAS, make_folds

    regions = list(dict.fromkeys(groups.tolist()))
    runs = np.asarray(rec["run"].values)
    folds = make_folds("contiguous", Y.shape[0], runs, N_FOLDS)
    alphas = np.asarray(DEFAULT_ALPHAS)
    built = [layer_design(f, stim, rec, alignment) for f in feats]
    designs, bands = [b[0] for b in built], built[0][1]
    r, preds = encoding_scores(designs, bands, Y, folds, alphas)
    boot = bootstrap_choice(preds, Y, folds, runs, groups, regions, n_boot=n_boot, seed=seed, level=level)
    reg_r = region_means(r, groups, regions)
    out = {"argmax_r": {"chosen": np.argmax(reg_r, axis=0), "region_r": reg_r, **boot},
           "pbest": {"chosen": np.argmax(boot["p_best"], axis=0)},
           "set_shallowest": {"chosen": np.argmax(boot["in_set"], axis=0)}}
    if single_too:
        from ..encoding.layer_id import layer_kernels, single_layer_scores

        s = single_layer_scores(layer_kernels(designs), Y, folds, alphas=alphas)["single_r"]
        out["single_r"] = {"chosen": np.argmax(region_means(s, groups, regions), axis=0)}
    if rsa_too:
        out.update(rsa_choices(designs, Y, groups, regions, topology=topology, seed=seed))
    return out
