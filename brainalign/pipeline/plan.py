"""Plan and run a study: tasks are participant x model x chunk of layers.

``run_study(cfg)`` checks the inputs up front (unknown participants are refused
before anything runs), skips participant x model pairs whose outputs match the
configuration hash (resume), warms the activation cache once per (model,
stimulus), runs the tasks on the chosen executor and writes each participant's
outputs as soon as its last chunk arrives (with a ceiling, once every task is in:
the ceiling is computed from the data the tasks loaded, :mod:`.ceiling`). A failing
participant is recorded with a one-line reason while the others finish.

This module only schedules. The work of a task is elsewhere: specs
(:mod:`.specs`), loading (:mod:`.sources`), cleaning (:mod:`.preprocess`), the
encoder (:mod:`.encoder_factory`), the prepare step (:mod:`.prepare`), scoring
(:mod:`.scoring`), layer selection (:mod:`.selection`), target geometry
(:mod:`.targets`).
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from ..errors import BrainAlignError, ConfigError, InputError, ModelError
from . import ceiling, outputs
from .api import annotate, finalize, select_activations
from .config import PipelineConfig, validate_config
from .encoder_factory import make_encoder
from .executor import run_tasks
from .paths import check_study_paths
from .prepare import baseline_table, prepare
from .preprocess import preprocess
from .provenance import model_attrs
from .report import write_participant_reports
from .result import merge_chunks
from .scoring import score_prepared
from .selection import layer_selection
from .sources import default_task, list_participants, load_participant, selected_participants, source_root
from .specs import StudySpecs, modality_of, specs_from_config
from .targets import copy_geometry, regions
from .windows import stack_windows


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


class TaskOutput(NamedTuple):
    """What one task hands back: its raw scores and, when a ceiling needs it, the neural data."""

    result: Any
    neural: ceiling.CeilingData | None


# --------------------------------------------------------------------------- task
def run_task(task: dict) -> TaskOutput:
    """One task: a participant x model x layer chunk -> raw Dataset (no FDR).

    ``task`` holds only JSON values: the configuration, the participant, task,
    model index, layers, whether this chunk also fits the baseline, and whether it
    hands back the preprocessed (samples, targets) data for a ceiling.
    """
    specs = specs_from_config(validate_config(task["config"]))
    model = specs.models[task["model"]]
    loaded = load_participant(specs.load, task["subject"], task["task"])
    rec = preprocess(loaded.recording, specs.preprocess, loaded.confounds)
    per_window = [select_activations(make_encoder(model, specs.execution, w), loaded.stimulus, task["layers"])
                  for w in model.windows]
    acts = per_window[0]
    B = baseline_table(specs.baseline, loaded.baseline, loaded.confounds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        P = prepare(rec, loaded.stimulus, B, specs.align, specs.score.cv,
                    baseline_delays=specs.baseline.delays if specs.baseline else None, regions=regions(rec))
        scored = [score_prepared(P, a, specs.score, with_baseline=model.with_baseline,
                                 fit_baseline=task["fit_baseline"] and i == 0) for i, a in enumerate(per_window)]
        ds = scored[0] if len(scored) == 1 else stack_windows(scored, model.windows)
        if specs.score.layer_selection != "argmax" and task.get("all_layers"):
            ds = layer_selection(ds, P, acts, specs.score)
    warns = [str(w) for w in rec.attrs.get("warnings", [])] + json.loads(ds.attrs.get("warnings", "[]"))  # loader's first
    warns += [str(w.message).splitlines()[0] for w in caught if not issubclass(w.category, (DeprecationWarning, FutureWarning))]
    ds.attrs["warnings"] = json.dumps(list(dict.fromkeys(warns)))
    ds.attrs.update(model_attrs(acts))  # the model's identity, for resume-by-content
    if len(model.windows) > 1:
        ds.attrs["context_words_grid"] = json.dumps(list(model.windows))
    copy_geometry(ds, rec)
    neural = ceiling.ceiling_data(rec, loaded.stimulus) if task.get("neural") else None
    return TaskOutput(ds, neural)


def _load_clean(specs: StudySpecs, task: str) -> Callable[[str], ceiling.CeilingData]:
    """A loader of one participant's preprocessed data and stimulus, for the ceiling."""
    def load(subject: str) -> ceiling.CeilingData:
        loaded = load_participant(specs.load, subject, task)
        return ceiling.ceiling_data(preprocess(loaded.recording, specs.preprocess, loaded.confounds), loaded.stimulus)
    return load


# ------------------------------------------------------------------------ study
def _chunks(layers: list[int], size: int) -> list[list[int]]:
    if size <= 0 or size >= len(layers):
        return [layers]
    return [layers[i:i + size] for i in range(0, len(layers), size)]


_modality = modality_of


def _task_list(cfg: PipelineConfig, specs: StudySpecs, pending, layer_lists, task: str, summary, *,
               neural: bool, debug: bool) -> tuple[list[dict], dict]:
    """The task specs (plain JSON) of the pending participant x model pairs, and their indices per pair."""
    tasks, groups = [], {}
    cfg_json = json.loads(cfg.model_dump_json())
    per_task = 0 if specs.score.layer_selection != "argmax" else specs.execution.layers_per_task
    threads = specs.execution.threads or os.cpu_count() or 1
    for s, mi in pending:
        if layer_lists.get(mi) is None or s in summary.failed:
            continue
        chunks = _chunks(layer_lists[mi], per_task)
        for ci, ch in enumerate(chunks):
            groups.setdefault((s, mi), []).append(len(tasks))
            tasks.append(dict(config=cfg_json, subject=s, task=task, model=mi, layers=ch, fit_baseline=ci == 0,
                              all_layers=len(chunks) == 1, neural=neural and ci == 0, debug=debug, threads=threads,
                              key=f"{s}-{specs.models[mi].label}-{ci}"))
    return tasks, groups


def run_study(cfg: PipelineConfig, *, out_dir=None, participants=None, n_jobs=None, scheduler=None,
              progress: bool = True, debug: bool = False,
              on_event: Callable[[dict], None] | None = None) -> RunSummary:
    """Run the participant level of a study and write its outputs.

    Returns a :class:`RunSummary`; raises only for input refused before any work
    (unknown participant, bad configuration, too few participants for a ceiling).

    ``on_event``, when given, is called in this process with a plain dict after each
    step: ``{"kind": "planned", "tasks": n, "pending": [[subject, model], ...],
    "skipped": [...], "failed": {subject: reason}}`` once the tasks are known, then
    ``{"kind": "task", "done": i, "total": n, "subject", "model", "layers",
    "error"}`` as each task finishes and ``{"kind": "written", "subject", "model"}``
    when a participant's outputs are on disk. An exception raised by ``on_event``
    stops the run at that task boundary and propagates (the service's cancel).
    """
    specs = specs_from_config(cfg)
    out = check_study_paths(cfg, out_dir or specs.outputs.dir or "brainalign-out")  # refused before any work
    src = specs.load
    subjects = selected_participants(src, participants)
    if not subjects:
        raise InputError(f"no participants in {source_root(src)}")
    task = default_task(src, subjects[0])
    h = cfg.config_hash()
    summary = RunSummary(out_dir=out)
    pending = []
    for s in subjects:
        for mi, m in enumerate(specs.models):
            if outputs.is_done(out, s, task, m.label, _modality(src), h):
                summary.skipped.append((s, m.label))
            else:
                pending.append((s, mi))
    wants = specs.stats.ceiling != "none" and "encoding" in specs.score.methods  # the ceiling normalises r only
    everyone = list_participants(src) if wants and pending else None
    if everyone is not None and specs.stats.ceiling == "loo_isc":
        ceiling.check_participants(len(everyone))
    layer_lists = {mi: _warm_cache(specs, mi, [s for s, m in pending if m == mi], task, summary)
                   for mi in sorted({mi for _, mi in pending})}
    outputs.write_dataset_description(out, [source_root(src)], name=specs.name)  # after the model check
    tasks, groups = _task_list(cfg, specs, pending, layer_lists, task, summary, neural=everyone is not None,
                               debug=debug)
    emit = on_event or (lambda event: None)
    emit({"kind": "planned", "tasks": len(tasks), "pending": [[s, specs.models[mi].label] for s, mi in pending],
          "skipped": [list(x) for x in summary.skipped], "failed": dict(summary.failed)})

    shared = everyone is not None and ceiling.needs_everyone(specs.stats.ceiling, len(everyone))

    def write(s, mi, chunks, neural=None, ceiling_r=None):
        if neural is not None:  # a ceiling from the participant's own runs: written as soon as it is in
            ceiling_r = ceiling.own_ceiling(specs.stats.ceiling, s, neural, len(everyone))
        _write_one(cfg, specs, chunks, s, task, mi, ceiling_r, h, out, summary)
        if (s, specs.models[mi].label) in summary.done:
            emit({"kind": "written", "subject": s, "model": specs.models[mi].label})

    ready = _run(tasks, groups, summary, n_jobs or specs.execution.n_jobs, scheduler or specs.execution.scheduler,
                 progress, write=None if shared else write, emit=emit, labels=[m.label for m in specs.models])
    if shared:
        neural = {s: y for (s, _), (_, y) in ready.items() if y is not None}
        neural.update(ceiling.load_others(everyone, neural, _load_clean(specs, task)))
        ceilings = ceiling.study_ceilings(specs.stats.ceiling, neural, everyone, {s for s, _ in ready})
        for (s, mi), (chunks, _) in ready.items():
            write(s, mi, chunks, ceiling_r=ceilings.get(s))
    outputs.write_failures(out, summary.failed)
    if specs.outputs.report:
        summary.reports = write_participant_reports(out, [s for s in subjects if s not in summary.failed])
    return summary


def _run(tasks, groups, summary, n_jobs, scheduler, progress, write, emit, labels) -> dict:
    """Run the tasks; each participant x model whose chunks are all in goes to ``write(s, mi, chunks, neural)``,
    or, when ``write`` is None, is returned as ``{(s, mi): (chunks, neural)}``."""
    results: dict[int, Any] = {}
    ready = {}
    bar = _bar(len(tasks), progress)
    for n, (i, res, err) in enumerate(run_tasks(run_task, tasks, n_jobs=n_jobs, scheduler=scheduler), 1):
        bar.update(1)
        s, mi = tasks[i]["subject"], tasks[i]["model"]
        emit({"kind": "task", "done": n, "total": len(tasks), "subject": s, "model": labels[mi],
              "layers": list(tasks[i]["layers"]), "error": err})
        if err is not None:
            summary.failed.setdefault(s, err)
            results[i] = None
            continue
        results[i] = res
        idx = groups[(s, mi)]
        if s in summary.failed or any(j not in results for j in idx):
            continue
        outs = [results.pop(j) for j in idx]
        chunks = [o.result for o in outs]
        neural = next((o.neural for o in outs if o.neural is not None), None)
        if write is None:
            ready[(s, mi)] = (chunks, neural)
        else:
            write(s, mi, chunks, neural)
    bar.close()
    return ready


def _warm_cache(specs: StudySpecs, mi: int, subjects, task: str, summary) -> list[int] | None:
    """Encode the first loadable participant's stimulus once; returns the layer list.

    A participant whose data cannot be used fails and the next one is tried; a model
    that cannot be used (:class:`~brainalign.errors.ModelError`) is refused once, for
    everyone, before any participant is scored.
    """
    model = specs.models[mi]
    for s in subjects:
        try:
            stim = load_participant(specs.load, s, task).stimulus
            acts = [make_encoder(model, specs.execution, w).encode(stim) for w in model.windows][0]
        except ModelError:
            raise
        except BrainAlignError as exc:  # this participant fails; the others go on
            summary.failed.setdefault(s, f"{type(exc).__name__}: {exc}")
            continue
        have = [int(x) for x in acts["layer"].values]
        if model.layers == "all":
            return have
        bad = [l for l in model.layers if l not in have]
        if bad:
            raise ConfigError(f"models.{model.label}.layers: {bad} not in the model (layers {have[0]}..{have[-1]})")
        return list(model.layers)
    return None


def _write_one(cfg, specs: StudySpecs, chunks, s, task, mi, ceiling_r, h, out, summary) -> None:
    m = specs.models[mi]
    try:
        ds = merge_chunks(chunks)
        ds = finalize(ds, ceiling=None if ceiling_r is None else ceiling_r.values, fdr=specs.stats.fdr, q=specs.stats.q)
        ceiling.record(ds, ceiling_r)  # the kind used, what it estimates, or why there is none
        ds = annotate(ds, None, subject=s, task=task, model=m.label, settings=cfg.settings(), config_hash=h)
        ds.attrs["rsa_metric"] = specs.score.rsa.compare
        outputs.write_participant(ds, out, config_hash=h, maps=specs.outputs.maps,
                                  save_folds=None if specs.outputs.save_folds else False,
                                  baseline_label=specs.baseline.label if specs.baseline else None)
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
    return tqdm(total=total, desc="participant x model x layers", unit="task", file=sys.stderr, disable=None)
