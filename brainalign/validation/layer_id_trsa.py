"""Topological RSA (tRSA) selection methods for the layer-identification study (issue 13).

Lin & Kriegeskorte, "The Topology and Geometry of Neural Representations" (PNAS 2024)
compare RDMs after a geo-topological (GT) transform or after replacing every
dissimilarity with a graph geodesic. Here each of those transforms is applied, RDM by
RDM, to the layers' model RDMs and the regions' brain RDMs (correlation distance over
volumes, as for plain ``rsa``); a region's layer is the arg-max of the Spearman
similarity of the transformed RDMs. Methods (:func:`topology_choices`):

- ``trsa_p_shortest``: geodesics on the shortest 5 % of pairs (the authors' default);
- ``trsa_twostep_0_0.075``: GT (0, 0.075), then geodesics, zero edges dropped (the
  authors' geodesic examples; :func:`brainalign.rsa.geodesic`'s defaults);
- ``trsa_k_nearest``: geodesics on each item's 3 nearest neighbours;
- ``trsa_keep_0.2_0.8``: brainalign's old contraction (zero edges kept, no ranks) at
  (0.2, 0.8), the known-bad reference of docs/validation.md section 5a;
- ``trsa_gt_select`` / ``trsa_geodesic_select``: the GT transform / the twostep
  geodesic at the band chosen by :func:`brainalign.rsa.gt_select.select_gt`.

The study has one participant per dataset, so ``select_gt``'s participants are
simulated from the model, as in the authors' "layer decodability under noise"
(:func:`brainalign.validation.geometry_trsa.noisy_rdms`): 6 participants, each with
its own random readout of every layer's design, 2 readouts at each noise level of
:data:`SELECT_SIGMAS`, on :data:`SELECT_ITEMS` volumes evenly spaced over the
recording; the classes are the layers. The band is chosen on the GT transform (grid
step :data:`SELECT_STEP`); choosing it on geodesics costs about 15 times more.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import geometry_trsa as G

#: Fixed geodesic settings: method name -> :func:`brainalign.rsa.geodesic` options.
GEODESICS = {
    "trsa_p_shortest": G.FIXED["p_shortest"],
    "trsa_twostep_0_0.075": dict(method="twostep", lower=0.0, upper=0.075, zero_edges="drop"),
    "trsa_k_nearest": G.FIXED["k_nearest"],
    "trsa_keep_0.2_0.8": G.FIXED["keep_0.2_0.8"],
}
SELECT_SIGMAS = (0.5, 1.0, 2.0)
SELECT_ITEMS = 96
SELECT_STEP = 0.05
METHODS = (*GEODESICS, "trsa_gt_select", "trsa_geodesic_select")


def geodesic_stack(rdms: np.ndarray, **options) -> tuple[np.ndarray, int]:
    """Geodesics of every RDM of a (k, n, n) stack and how many of them collapsed.

    Unreachable pairs take the RDM's largest finite length (``fill="max"``), as in
    :mod:`.geometry_trsa`; a :class:`~brainalign.errors.GeodesicCollapseWarning` is
    counted, not shown.
    """
    from .. import rsa
    from ..errors import GeodesicCollapseWarning

    out, collapsed = [], 0
    for x in rdms:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GeodesicCollapseWarning)
            out.append(np.asarray(rsa.geodesic(x, fill="max", **options)))
        collapsed += any(issubclass(w.category, GeodesicCollapseWarning) for w in caught)
    return np.stack(out), collapsed


def _best(model: np.ndarray, brains: np.ndarray) -> np.ndarray:
    """Arg-max layer per region of the Spearman similarity of (L, n, n) and (R, n, n) RDMs."""
    from .. import rsa

    return np.argmax(np.asarray(rsa.compare(model, brains, method="spearman")), axis=0)


def choose_band(designs_ok: list[np.ndarray], seed: int):
    """``select_gt`` on simulated participants' noisy readouts of the layers' designs.

    Parameters
    ----------
    designs_ok : list of ndarray, each (n_volumes, p)
        The layers' designs on the volumes the RDMs use (equal ``p`` for all layers).
    seed : int
        Seed of the readouts and the noise (the same participants at every noise level).

    Returns
    -------
    brainalign.rsa.gt_select.GTSelection
    """
    from ..rsa.gt_select import select_gt

    layers = np.stack(designs_ok)
    idx = np.unique(np.round(np.linspace(0, layers.shape[1] - 1, SELECT_ITEMS)).astype(int))
    sub = layers[:, idx]
    rdms = np.concatenate([G.noisy_rdms(sub, s, seed) for s in SELECT_SIGMAS], axis=2)
    return select_gt(rdms, step=SELECT_STEP, transform="gt")


def topology_choices(model: np.ndarray, brains: np.ndarray, designs_ok: list[np.ndarray], *,
                     seed: int = 0) -> dict[str, dict]:
    """Every tRSA method of :data:`METHODS`: name -> {"chosen": (n_regions,), "collapsed", ["band"]}.

    Parameters
    ----------
    model : ndarray, shape (n_layers, n, n)
        The layers' RDMs.
    brains : ndarray, shape (n_regions, n, n)
        The regions' RDMs over the same ``n`` volumes.
    designs_ok : list of ndarray
        The designs those model RDMs came from (rows = the ``n`` volumes), for ``select_gt``.
    seed : int
        Seed of ``select_gt``'s simulated participants.

    Returns
    -------
    dict
        ``collapsed``: model and brain RDMs whose geodesics collapsed (int); ``band``:
        the chosen "lower-upper" for the ``*_select`` methods.
    """
    from .. import rsa

    out = {}
    for name, options in GEODESICS.items():
        m, cm = geodesic_stack(model, **options)
        b, cb = geodesic_stack(brains, **options)
        out[name] = {"chosen": _best(m, b), "collapsed": cm + cb}
    sel = choose_band(designs_ok, seed)
    band = f"{sel.lower:g}-{sel.upper:g}"
    gt = [np.asarray(rsa.gt_transform(x, lower=sel.lower, upper=sel.upper)) for x in (model, brains)]
    out["trsa_gt_select"] = {"chosen": _best(*gt), "collapsed": 0, "band": band}
    opts = dict(method="twostep", lower=sel.lower, upper=sel.upper, zero_edges="drop")
    (m, cm), (b, cb) = geodesic_stack(model, **opts), geodesic_stack(brains, **opts)
    out["trsa_geodesic_select"] = {"chosen": _best(m, b), "collapsed": cm + cb, "band": band}
    return out
