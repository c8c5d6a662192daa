"""Layer selection (``scoring.layer_selection``) on a participant's :class:`Prepared` data.

It scores the same kept samples (run trims and non-finite samples left out) in the
same outer folds as the encoding scorer: it reads the one :class:`Prepared`.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .. import rsa
from ..encoding.layer_id import identify_layer_by_encoding, layer_kernels
from .prepare import Prepared
from .scoring import blocks
from .specs import ScoreSpec

#: Bootstrap draws of the RSA layer identification.
RSA_SELECTION_BOOTSTRAP = 200


def _rsa_selection(ds: xr.Dataset, P: Prepared, designs: list[np.ndarray], spec: ScoreSpec) -> xr.Dataset:
    o = spec.rsa
    items = blocks(P.n_samples, o.n_items)
    brain = np.asarray(rsa.rdm(np.stack([P.Y[b].mean(0) for b in items]), metric=o.metric))
    model = np.stack([np.asarray(rsa.rdm(np.stack([d[b].mean(0) for b in items]), metric=o.metric)) for d in designs])
    gt = ((o.lower, o.upper),) if o.transform != "none" else None
    res = rsa.identify_layer(brain, model, method=o.compare, gt=gt,
                             transform=o.transform if o.transform != "none" else "gt",
                             layer_names=list(ds["layer"].values), over="stimuli",
                             n_bootstrap=RSA_SELECTION_BOOTSTRAP, seed=spec.seed)
    best = res.settings[-1]
    ds["rsa_layer_id"] = ((), int(best.best_layer))
    ds["rsa_layer_p_best"] = (("layer",), np.asarray(best.p_best, dtype=float))
    return ds


def layer_selection(ds: xr.Dataset, P: Prepared, activations: xr.DataArray, spec: ScoreSpec) -> xr.Dataset:
    """Add the chosen layer to ``ds``, as ``spec.layer_selection`` says.

    ``"rsa"``: ``rsa_layer_id`` () and ``rsa_layer_p_best`` (layer); any of
    brainalign.encoding.layer_id's methods: ``layer_id`` (target) and
    ``layer_id_score`` (layer, target). ``activations`` holds every layer of ``ds``.
    """
    designs = [X for _, X in P.designs(activations)]
    if spec.layer_selection == "rsa":
        return _rsa_selection(ds, P, designs, spec)
    layers = np.asarray(ds["layer"].values)
    res = identify_layer_by_encoding(layer_kernels(designs), P.Y, list(P.folds), method=spec.layer_selection,
                         alphas=np.asarray(spec.alphas))
    ds["layer_id"] = (("target",), layers[np.asarray(res["best"])])
    ds["layer_id_score"] = (("layer", "target"), np.asarray(res["score"]))
    return ds
