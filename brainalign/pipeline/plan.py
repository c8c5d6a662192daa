"""Plan and run a study: tasks are participant x model x chunk of layers.

``run_study(cfg)`` checks the inputs up front (unknown participants are refused
before anything runs), skips participant x model pairs whose outputs match the
configuration hash (resume), warms the activation cache once per (model,
stimulus), runs the tasks on the chosen executor and writes each participant's
outputs as soon as its last chunk arrives. A failing participant is recorded with
a one-line reason while the others finish.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, InputError
from . import outputs
from .api import annotate, finalize, score_chunk, select_activations
from .config import PACKAGED_MODEL, PipelineConfig, validate_config
from .executor import run_tasks
from .paths import check_study_paths
from .result import merge_chunks
from .sources import default_task, list_participants, load_participant, selected_participants, source_root


@dataclass
class RunSummary:
    """What a run did."""

    out_dir: Path
    done: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all done, 1 partial (some participants failed), 2 nothing could be done."""
        if not self.failed:
            return 0
        return 1 if (self.done or self.skipped) else 2


# ------------------------------------------------------------------------ encoder
def make_encoder(model_cfg, cfg: PipelineConfig):
    from ..encoders import HFEncoder

    return HFEncoder(
        model=None if model_cfg.path == PACKAGED_MODEL else model_cfg.path,
        layers=None,
        context_words=model_cfg.context_words,
        context=model_cfg.context,
        pooling=model_cfg.pooling,
        batch_size=model_cfg.batch_size,
        device=cfg.execution.device,
        cache_dir=cfg.execution.cache_dir,
        revision=model_cfg.revision,
        trust_remote_code=model_cfg.trust_remote_code,
    )


def _baseline_table(cfg: PipelineConfig, base, recording):
    """Baseline regressors (n_samples, q) selected by the config, or None."""
    if cfg.baseline is None:
        return None
    if base is None:
        raise ConfigError("baseline: the data source gives no baseline regressors; remove the baseline section")
    cols = cfg.baseline.columns
    missing = [c for c in (cols or []) if c not in base.columns]
    if missing:
        raise ConfigError(f"baseline.columns: {missing} not in the source's regressors {list(base.columns)}")
    table = base[cols] if cols else base
    return table.to_numpy(dtype=np.float64)


def _regions(recording) -> dict[str, np.ndarray] | None:
    for name in ("region", "roi"):
        if name in recording.coords and recording[name].dims == ("target",):
            labels = np.asarray(recording[name].values).astype(str)
            return {lab: np.flatnonzero(labels == lab) for lab in dict.fromkeys(labels.tolist())}
    return None


# --------------------------------------------------------------------------- task
def run_task(spec: dict) -> Any:
    """One task: a participant x model x layer chunk -> raw Dataset (no FDR).

    ``spec`` holds only JSON values: the configuration, the participant, task,
    model index, layers and whether this chunk also fits the baseline.
    """
    cfg = validate_config(spec["config"])
    model_cfg = cfg.models[spec["model"]]
    rec, stim, base = load_participant(cfg.source, spec["subject"], spec["task"])
    rec = preprocess(rec, cfg)
    acts = select_activations(make_encoder(model_cfg, cfg), stim, spec["layers"])
    al, sc = cfg.alignment, cfg.scoring
    B = _baseline_table(cfg, base, rec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = score_chunk(
            rec, stim, acts, methods=sc.methods, alignment=al.method, delays=al.delays, window=al.window,
            trim=tuple(al.trim), tmin=al.tmin, tmax=al.tmax, cv=sc.cv.kind, n_folds=sc.cv.n_folds,
            cv_column=sc.cv.column, inner_cv=sc.inner_cv, alphas=sc.alphas, baseline=B,
            baseline_delays=cfg.baseline.delays if cfg.baseline else None,
            with_baseline=model_cfg.with_baseline, fit_baseline=spec["fit_baseline"],
            baseline_penalty=sc.baseline_penalty,
            regions=_regions(rec), rsa_options=sc.rsa.model_dump(),
        )
        if sc.layer_selection != "argmax" and spec.get("all_layers"):
            ds = layer_selection(ds, rec, stim, acts, cfg)
    warns = json.loads(ds.attrs.get("warnings", "[]"))
    warns += [str(w.message).splitlines()[0] for w in caught if not issubclass(w.category, (DeprecationWarning, FutureWarning))]
    ds.attrs["warnings"] = json.dumps(list(dict.fromkeys(warns)))
    _geometry(ds, rec)
    return ds


def _geometry(ds, rec) -> None:
    """Copy the voxel grid (affine, volume shape, flat C-order voxel index) onto a result."""
    if "sources" in rec.attrs:
        ds.attrs["sources"] = json.dumps([str(s) for s in rec.attrs["sources"]])
    shape = rec.attrs.get("volume_shape")
    if shape is None or "affine" not in rec.attrs or "voxel_i" not in rec.coords:
        return
    shape = tuple(int(s) for s in np.asarray(shape).ravel()[:3])
    ijk = np.stack([np.asarray(rec[c].values, dtype=np.int64) for c in ("voxel_i", "voxel_j", "voxel_k")])
    ds.attrs["affine"] = json.dumps(np.asarray(rec.attrs["affine"], dtype=float).reshape(4, 4).tolist())
    ds.attrs["grid_shape"] = json.dumps(list(shape))
    ds.coords["voxel_flat"] = ("target", np.ravel_multi_index(tuple(ijk), shape))


def preprocess(rec, cfg: PipelineConfig):
    """Per-run cleaning with nilearn.signal.clean (detrend, filters, z-score)."""
    pp = cfg.data.preprocess
    if not (pp.detrend or pp.high_pass or pp.low_pass or pp.standardize):
        return rec
    from nilearn.signal import clean

    runs = np.asarray(rec["run"].values)
    if rec.attrs.get("modality") == "erp":  # one number per word: only z-score
        if pp.standardize:
            v = rec.values.astype(np.float64)
            mu, sd = np.nanmean(v, 0), np.nanstd(v, 0)
            sd[sd == 0] = 1
            return rec.copy(data=(v - mu) / sd)
        return rec
    tr = rec.attrs.get("tr") or (1.0 / rec.attrs["sfreq"])
    out = np.empty(rec.shape, dtype=np.float64)
    for r in dict.fromkeys(runs.tolist()):
        sel = runs == r
        out[sel] = clean(rec.values[sel].astype(np.float64), detrend=pp.detrend, high_pass=pp.high_pass,
                         low_pass=pp.low_pass, t_r=tr, standardize="zscore_sample" if pp.standardize else False)
    return rec.copy(data=out)


def layer_selection(ds, rec, stim, acts, cfg):
    """Add ``layer_id`` (target,) chosen by ``scoring.layer_selection``."""
    from .api import layer_design, make_outer_cv, neural_samples, default_method

    sel = cfg.scoring.layer_selection
    method = default_method(rec.attrs.get("modality", "fmri")) if cfg.alignment.method == "auto" else cfg.alignment.method
    Y, runs = neural_samples(rec, stim, method, tmin=cfg.alignment.tmin, tmax=cfg.alignment.tmax)
    keep = np.all(np.isfinite(Y), axis=1)
    designs = [layer_design(np.asarray(acts.isel(layer=i).values, np.float64), stim, rec, method,
                            delays=cfg.alignment.delays, window=cfg.alignment.window)[keep]
               for i in range(acts.sizes["layer"])]
    groups = stim[cfg.scoring.cv.column].to_numpy()[keep] if cfg.scoring.cv.kind == "group" else None
    folds = make_outer_cv(cfg.scoring.cv.kind, int(keep.sum()), runs[keep], cfg.scoring.cv.n_folds, groups)
    layers = np.asarray(ds["layer"].values)
    if sel == "rsa":
        from .. import rsa

        o = cfg.scoring.rsa
        blocks = [b for b in np.array_split(np.arange(int(keep.sum())), min(o.n_items, int(keep.sum()))) if b.size]
        Yk = Y[keep]
        brain = np.asarray(rsa.rdm(np.stack([Yk[b].mean(0) for b in blocks]), metric=o.metric))
        model = np.stack([np.asarray(rsa.rdm(np.stack([d[b].mean(0) for b in blocks]), metric=o.metric)) for d in designs])
        res = rsa.identify_layer(brain, model, method=o.compare, gt=((o.lower, o.upper),) if o.transform != "none" else None,
                                 transform=o.transform if o.transform != "none" else "gt", layer_names=list(layers),
                                 over="stimuli", n_bootstrap=200, seed=cfg.scoring.seed)
        best = res.settings[-1]
        ds["rsa_layer_id"] = ((), int(best.best_layer))
        ds["rsa_layer_p_best"] = (("layer",), np.asarray(best.p_best, dtype=float))
        return ds
    from ..encoding.layer_id import identify_layer_by_encoding, layer_kernels

    res = identify_layer_by_encoding(layer_kernels(designs), Y[keep], folds, method=sel, alphas=np.asarray(cfg.scoring.alphas))
    ds["layer_id"] = (("target",), layers[np.asarray(res["best"])])
    ds["layer_id_score"] = (("layer", "target"), np.asarray(res["score"]))
    return ds


# ---------------------------------------------------------------------- ceilings
def loo_isc_ceilings(cfg: PipelineConfig, subjects: Sequence[str], task: str) -> dict[str, list[float]]:
    """Leave-one-out inter-subject correlation per participant and target."""
    from ..errors import DataError

    data = {}
    for s in subjects:
        try:
            rec = preprocess(load_participant(cfg.source, s, task)[0], cfg)
        except DataError:  # an unusable participant (reported by its own task) joins no ceiling
            continue
        data[s] = np.asarray(rec.values, dtype=np.float64)
    subjects = list(data)
    if len(subjects) < 3:
        raise InputError(f"ceiling 'loo_isc' needs at least 3 usable participants, found {len(subjects)}")
    shapes = {v.shape for v in data.values()}
    if len(shapes) != 1:
        raise InputError(f"ceiling 'loo_isc' needs the same samples x targets for everyone; got shapes {sorted(shapes)}")
    stack = np.stack([data[s] for s in subjects])  # (n_subj, n, t)
    out = {}
    for i, s in enumerate(subjects):
        others = np.nanmean(np.delete(stack, i, axis=0), axis=0)
        a, b = stack[i], others
        ok = np.isfinite(a) & np.isfinite(b)
        r = []
        for t in range(a.shape[1]):
            m = ok[:, t]
            r.append(float(np.corrcoef(a[m, t], b[m, t])[0, 1]) if m.sum() > 2 else float("nan"))
        out[s] = r
    return out


# ------------------------------------------------------------------------ study
def _chunks(layers: list[int], size: int) -> list[list[int]]:
    if size <= 0 or size >= len(layers):
        return [layers]
    return [layers[i:i + size] for i in range(0, len(layers), size)]


def run_study(cfg: PipelineConfig, *, out_dir=None, participants=None, n_jobs=None, scheduler=None,
              progress: bool = True, debug: bool = False) -> RunSummary:
    """Run the participant level of a study and write its outputs.

    Returns a :class:`RunSummary`; raises only for input refused before any work
    (unknown participant, bad configuration).
    """
    out = check_study_paths(cfg, out_dir or cfg.outputs.dir or "brainalign-out")  # refused before any work
    src = cfg.source
    subjects = selected_participants(src, participants)
    if not subjects:
        raise InputError(f"no participants in {source_root(src)}")
    task = default_task(src, subjects[0])
    h = cfg.config_hash()
    outputs.write_dataset_description(out, [source_root(src)], name=cfg.name)
    summary = RunSummary(out_dir=out)
    modality_of = {}
    pending = []
    for s in subjects:
        for mi, m in enumerate(cfg.models):
            mod = _modality(cfg)
            modality_of[s] = mod
            if outputs.is_done(out, s, task, m.label, mod, h):
                summary.skipped.append((s, m.label))
            else:
                pending.append((s, mi))
    ceilings = {}
    if cfg.statistics.ceiling == "loo_isc" and pending:
        everyone = [p for p in list_participants(src)]
        ceilings = loo_isc_ceilings(cfg, everyone, task)
    layer_lists = {}
    for mi in sorted({mi for _, mi in pending}):
        layer_lists[mi] = _warm_cache(cfg, mi, [s for s, m in pending if m == mi], task, summary)
    specs, groups = [], {}
    cfg_json = json.loads(cfg.model_dump_json())
    for s, mi in pending:
        if layer_lists.get(mi) is None or s in summary.failed:
            continue
        chunks = _chunks(layer_lists[mi], 0 if cfg.scoring.layer_selection != "argmax" else cfg.execution.layers_per_task)
        for ci, ch in enumerate(chunks):
            groups.setdefault((s, mi), []).append(len(specs))
            specs.append(dict(config=cfg_json, subject=s, task=task, model=mi, layers=ch, fit_baseline=ci == 0,
                              all_layers=len(chunks) == 1, key=f"{s}-{cfg.models[mi].label}-{ci}", debug=debug,
                              threads=cfg.execution.threads or os.cpu_count() or 1))
    results: dict[int, Any] = {}
    bar = _bar(len(specs), progress)
    for i, res, err in run_tasks(run_task, specs, n_jobs=n_jobs or cfg.execution.n_jobs,
                                 scheduler=scheduler or cfg.execution.scheduler):
        bar.update(1)
        spec = specs[i]
        s, mi = spec["subject"], spec["model"]
        if err is not None:
            summary.failed.setdefault(s, err)
            results[i] = None
            continue
        results[i] = res
        idx = groups[(s, mi)]
        if s in summary.failed or any(j not in results for j in idx):
            continue
        _write_one(cfg, [results.pop(j) for j in idx], s, task, mi, ceilings.get(s), h, out, summary)
    bar.close()
    outputs.write_failures(out, summary.failed)
    if cfg.outputs.report:
        from .report import write_participant_reports

        summary.reports = write_participant_reports(out, [s for s in subjects if s not in summary.failed])
    return summary


def _modality(cfg) -> str:
    src = cfg.source
    if src.kind == "word_erp":
        return "erp"
    if src.kind == "roi_table":
        return "fmri"
    return {"func": "fmri"}.get(src.datatype, src.datatype)


def _warm_cache(cfg, mi, subjects, task, summary):
    """Encode the first loadable participant's stimulus once; returns the layer list."""
    model_cfg = cfg.models[mi]
    from ..errors import BrainAlignError

    for s in subjects:
        try:
            stim = load_participant(cfg.source, s, task)[1]
            acts = make_encoder(model_cfg, cfg).encode(stim)
        except BrainAlignError as exc:  # this participant fails; the others go on
            summary.failed.setdefault(s, f"{type(exc).__name__}: {exc}")
            continue
        have = [int(x) for x in acts["layer"].values]
        if model_cfg.layers == "all":
            return have
        bad = [l for l in model_cfg.layers if l not in have]
        if bad:
            raise ConfigError(f"models.{model_cfg.label}.layers: {bad} not in the model (layers {have[0]}..{have[-1]})")
        return list(model_cfg.layers)
    return None


def _write_one(cfg, chunks, s, task, mi, ceiling, h, out, summary):
    m = cfg.models[mi]
    try:
        ds = merge_chunks(chunks)
        ds = finalize(ds, ceiling=ceiling, fdr=cfg.statistics.fdr)
        from types import SimpleNamespace

        rec_like = SimpleNamespace(attrs={})
        ds = annotate(ds, rec_like, subject=s, task=task, model=m.label, settings=cfg.settings(), config_hash=h)
        ds.attrs["rsa_metric"] = cfg.scoring.rsa.compare
        outputs.write_participant(ds, out, config_hash=h, maps=cfg.outputs.maps, save_folds=None if cfg.outputs.save_folds else False,
                                  baseline_label=cfg.baseline.label if cfg.baseline else None)
        summary.done.append((s, m.label))
        summary.warnings += [f"sub-{s}: {w}" for w in json.loads(ds.attrs.get("warnings", "[]"))]
    except Exception as exc:  # noqa: BLE001
        summary.failed.setdefault(s, f"{type(exc).__name__}: {exc}")


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _bar(total: int, progress: bool):
    if not progress or total == 0:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="participant x model x layers", unit="task", file=sys.stderr, disable=None)
