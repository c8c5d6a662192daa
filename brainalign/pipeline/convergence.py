"""Model-to-model convergence (the Platonic analysis): layer x layer matrices between two models.

With ``scoring.methods: [geometry]`` and two or more models, the group level
writes, for every pair of models, the pair metrics of ``scoring.geometry.metrics``
(``id`` aside) between every layer of one model and every layer of the other, on
the word-level activations of the same words (Huh et al. 2024 measure convergence
this way, with mutual k-NN): ``group/task-<t>_desc-<A>_vs-<B>_convergence.tsv``,
long format (model_a, layer_a, model_b, layer_b, metric, value), with a sidecar.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import check_safe_label
from . import outputs
from .encoder_factory import make_encoder
from .geometry_scores import pair_metric
from .sources import default_task, load_participant, selected_participants
from .specs import GeometrySpec, specs_from_config


def convergence_table(acts: Mapping[str, xr.DataArray], spec: GeometrySpec) -> pd.DataFrame:
    """Layer x layer pair metrics between every two models' word-level activations.

    Parameters
    ----------
    acts : mapping of model label -> DataArray (layer, word, feature)
        Activations of the same words, in the same order.
    spec : GeometrySpec
        Which metrics (``id`` is left out) and their settings.

    Returns
    -------
    DataFrame with columns model_a, layer_a, model_b, layer_b, metric, value
        One row per pair of layers of each pair of models (in the order given).
    """
    labels = list(acts)
    metrics = [m for m in spec.metrics if m != "id"]
    rows = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            xa, xb = acts[a], acts[b]
            if xa.sizes["word"] != xb.sizes["word"]:
                raise ValueError(f"models {a} and {b} encoded {xa.sizes['word']} and {xb.sizes['word']} words")
            for la in xa["layer"].values:
                fa = np.asarray(xa.sel(layer=la).values, dtype=np.float64)
                for lb in xb["layer"].values:
                    fb = np.asarray(xb.sel(layer=lb).values, dtype=np.float64)
                    for m in metrics:
                        rows.append((a, int(la), b, int(lb), m, pair_metric(fa, fb, m, spec)))
    return pd.DataFrame(rows, columns=["model_a", "layer_a", "model_b", "layer_b", "metric", "value"])


def convergence_path(out_dir, task: str, model_a: str, model_b: str) -> Path:
    """``group/task-<t>_desc-<A>_vs-<B>_convergence.tsv``."""
    names = [check_safe_label(x, "model label") for x in (model_a, model_b)]
    return Path(out_dir) / "group" / (f"task-{check_safe_label(task, 'task')}_desc-{names[0]}_vs-{names[1]}"
                                      "_convergence.tsv")


def write_convergence(out_dir, cfg) -> list[Path]:
    """Model-to-model layer x layer matrices of a study with two or more models (group folder).

    Reads the first participant's words (every participant of a study shares the
    models; the words are the first participant's), encodes them with each model
    (the activation cache serves the participant level's passes) and writes one
    long TSV per pair of models, with a JSON sidecar. Nothing when the study asks
    for no geometry, has one model, or sets ``scoring.geometry.convergence: false``.
    """
    specs = specs_from_config(cfg)
    g = specs.score.geometry
    if "geometry" not in specs.score.methods or len(specs.models) < 2 or not g.convergence:
        return []
    subjects = selected_participants(specs.load)
    task = default_task(specs.load, subjects[0])
    stim = load_participant(specs.load, subjects[0], task).stimulus
    acts = {}
    for m in specs.models:
        a = make_encoder(m, specs.execution).encode(stim)
        acts[m.label] = a if m.layers == "all" else a.sel(layer=list(m.layers))
    table = convergence_table(acts, g)
    files = []
    labels = list(acts)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            part = table[(table["model_a"] == a) & (table["model_b"] == b)]
            path = convergence_path(out_dir, task, a, b)
            files.append(outputs.write_tsv(path, part))
            files.append(outputs.write_json(path.with_suffix(".json"), {
                "Description": "model-to-model layer x layer representational similarity on the same words "
                               "(brainalign.geometry; shape is a distance, the others similarities)",
                "Words": int(stim.shape[0]), "Participant": subjects[0], "Settings": _settings(g)}))
    return files


def _settings(g: GeometrySpec) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(g).items()}
