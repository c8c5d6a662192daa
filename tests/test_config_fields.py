"""Every configuration field reaches a spec, every spec field is read, option lists are the kernels'.

A field added to the schema (brainalign/pipeline/config.py) with no entry in FIELDS
below fails ``test_every_config_field_has_an_entry``; an entry whose spec attribute
does not carry the configured value fails ``test_each_field_reaches_its_spec``; a
spec field that no pipeline module reads fails ``test_every_spec_field_is_read``.
"""
from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from brainalign.pipeline import choices
from brainalign.pipeline.config import PipelineConfig, validate_config
from brainalign.pipeline.specs import StudySpecs, specs_from_config

PIPELINE = Path(__file__).resolve().parents[1] / "brainalign" / "pipeline"

#: configuration leaf -> the StudySpecs attribute that carries it. ``[kind]`` names a
#: variant of ``data.source``, ``[]`` an item of a list section.
_SOURCE_COMMON = {"kind": "load.kind", "task": "load.task", "participants": "load.participants",
                  "options": "load.options"}
FIELDS = {
    "name": "name",
    **{f"data.source[bids].{k}": v for k, v in _SOURCE_COMMON.items()},
    **{f"data.source[bids].{k}": f"load.{k}" for k in
       ("root", "datatype", "session", "runs", "space", "mask", "atlas", "tr", "word_column", "derivatives",
        "pool_sessions", "trial_type", "allow_numeric_words", "high_gamma")},
    **{f"data.source[nifti].{k}": f"load.{k}" for k in
       ("kind", "task", "participants", "root", "exclude", "bold", "words", "tr", "mask", "atlas", "tier",
        "word_column")},
    **{f"data.source[adapter].{k}": v for k, v in _SOURCE_COMMON.items()},
    **{f"data.source[adapter].{k}": f"load.{k}" for k in ("root", "adapter", "exclude")},
    **{f"data.source[roi_table].{k}": v for k, v in _SOURCE_COMMON.items()},
    **{f"data.source[roi_table].{k}": f"load.{k}" for k in ("root", "adapter", "exclude")},
    **{f"data.source[word_erp].{k}": v for k, v in _SOURCE_COMMON.items()},
    **{f"data.source[word_erp].{k}": f"load.{k}" for k in ("path", "adapter", "exclude")},
    **{f"data.preprocess.{k}": f"preprocess.{k}" for k in ("detrend", "high_pass", "low_pass", "standardize",
                                                            "confounds")},
    **{f"baseline.{k}": f"baseline.{k}" for k in ("label", "columns", "delays")},
    **{f"models[].{k}": f"models[].{k}" for k in ("label", "path", "layers", "context", "context_words", "pooling",
                                                  "batch_size", "revision", "trust_remote_code", "with_baseline")},
    **{f"alignment.{k}": f"align.{k}" for k in ("method", "delays", "window", "trim", "zscore", "tmin", "tmax")},
    **{f"scoring.cv.{k}": f"score.cv.{k}" for k in ("kind", "n_folds", "column")},
    "scoring.inner_cv": "score.cv.inner_cv",
    **{f"scoring.{k}": f"score.{k}" for k in ("methods", "alphas", "seed", "baseline_penalty", "layer_selection",
                                                   "permutations")},
    **{f"scoring.rsa.{k}": f"score.rsa.{k}" for k in ("metric", "compare", "transform", "lower", "upper", "n_items",
                                                      "geodesic_method", "zero_edges", "p", "k", "rank", "select_gt",
                                                      "select_step")},
    **{f"scoring.geometry.{k}": f"score.geometry.{k}" for k in ("metrics", "k", "cka_kernel", "debiased", "alpha",
                                                                "shape_kind", "shape_folds", "id_method", "id_scale",
                                                                "convergence")},
    **{f"statistics.{k}": f"stats.{k}" for k in ("fdr", "q", "ceiling", "group_test", "ci", "n_bootstrap")},
    **{f"outputs.{k}": f"outputs.{k}" for k in ("dir", "maps", "report", "save_folds")},
    **{f"execution.{k}": f"execution.{k}" for k in ("n_jobs", "scheduler", "layers_per_task", "cache_dir", "device",
                                                   "threads")},
}


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models inside a field annotation (Optional, Union, Annotated, list)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def config_leaves(model: type[BaseModel] = PipelineConfig, prefix: str = "") -> list[str]:
    """Every leaf field of the schema, recursively, as dotted paths."""
    leaves = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        inner = _models_in(info.annotation)
        if not inner:
            leaves.append(path)
        elif len(inner) > 1:  # a discriminated union: one branch per variant
            for sub in inner:
                leaves += config_leaves(sub, f"{path}[{sub.model_fields['kind'].default}].")
        else:
            is_list = typing.get_origin(info.annotation) is list
            leaves += config_leaves(inner[0], f"{path}[]." if is_list else f"{path}.")
    return leaves


def _get(obj, path: str):
    for part in path.replace("[]", ".0").split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _norm(v):
    if isinstance(v, dict):
        return tuple(sorted((k, _norm(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    return v


def _rich(kind: str) -> dict:
    """A configuration of source ``kind`` with a non-default value in (nearly) every field."""
    source = {"bids": {"kind": "bids", "root": "/r", "task": "t", "participants": ["01"], "datatype": "meg",
                       "session": "s1", "runs": [1, "2"], "space": "MNI", "mask": "/m.nii", "atlas": "/a.nii",
                       "tr": 1.5, "word_column": "token", "derivatives": "/d", "pool_sessions": True,
                       "trial_type": ["w"], "allow_numeric_words": True, "high_gamma": True,
                       "options": {"sentence_column": None, "notch": 50}},
              "nifti": {"kind": "nifti", "root": "/r", "bold": "s{participant}/r{run}.nii", "words": "w{run}.tsv",
                        "task": "t", "participants": ["01"], "exclude": ["02"], "tr": 2.5, "mask": "/m.nii",
                        "atlas": "/a.nii", "tier": "words", "word_column": "token"},
              "adapter": {"kind": "adapter", "adapter": "mylab.loaders:load_subject", "root": "/r", "task": "t",
                          "participants": ["s1"], "exclude": ["s2"], "options": {"x": 1}},
              "roi_table": {"kind": "roi_table", "root": "/r", "adapter": "alice", "task": "t",
                            "participants": ["s1"], "exclude": ["s2"], "options": {"resolution": "6mm"}},
              "word_erp": {"kind": "word_erp", "path": "/p.csv", "adapter": "frank2015", "task": "t",
                           "participants": ["1"], "exclude": ["2"], "options": {"value": "N400"}}}[kind]
    return {
        "name": "rich", "data": {"source": source, "preprocess": {"detrend": True, "high_pass": 0.01, "low_pass": 0.2,
                                                                  "standardize": False, "confounds": "scrubbing"}},
        "baseline": {"label": "base", "columns": ["a"], "delays": [0, 1]},
        "models": [{"label": "m", "path": "/model", "layers": [1, 3], "context": "sentence", "context_words": 7,
                    "pooling": "mean", "batch_size": 3, "revision": "abc", "trust_remote_code": True,
                    "with_baseline": False}],
        "alignment": {"method": "epochs", "delays": [0, 2], "window": 5, "trim": [1, 2], "zscore": False,
                      "tmin": 0.1, "tmax": 0.9},
        "scoring": {"methods": ["encoding"], "cv": {"kind": "group", "n_folds": 3, "column": "sentence"},
                    "inner_cv": 4, "alphas": [0.5, 2.0], "seed": 9, "baseline_penalty": "shared", "permutations": 50,
                    "layer_selection": "unique_pairwise",
                    "rsa": {"metric": "cosine", "compare": "kendall_tau_a", "transform": "gt", "lower": 0.1,
                            "upper": 0.7, "n_items": 50, "geodesic_method": "k_nearest", "zero_edges": "keep",
                            "p": 0.1, "k": 3, "rank": False, "select_gt": True, "select_step": 0.1},
                    "geometry": {"metrics": ["cknna", "shape_cv"], "k": 4, "cka_kernel": "rbf", "debiased": True,
                                 "alpha": 0.5, "shape_kind": "euclidean", "shape_folds": 3, "id_method": "gride",
                                 "id_scale": 2, "convergence": False}},
        "statistics": {"fdr": False, "q": 0.01, "ceiling": "loo_isc", "group_test": "ttest", "ci": 0.9,
                       "n_bootstrap": 10},
        "outputs": {"dir": "/out", "maps": False, "report": False, "save_folds": False},
        "execution": {"n_jobs": 2, "scheduler": "tcp://h:1", "layers_per_task": 2, "cache_dir": "/c",
                      "device": "cuda", "threads": 3},
    }


def test_every_config_field_has_an_entry():
    leaves = config_leaves()
    missing = sorted(set(leaves) - set(FIELDS))
    stale = sorted(set(FIELDS) - set(leaves))
    assert not missing, f"configuration fields that no spec carries (add them to specs.py and FIELDS): {missing}"
    assert not stale, f"FIELDS entries for fields the schema no longer has: {stale}"


@pytest.mark.parametrize("kind", ["bids", "roi_table", "word_erp", "nifti", "adapter"])
def test_each_field_reaches_its_spec(kind):
    cfg = validate_config(_rich(kind))
    specs = specs_from_config(cfg)
    checked = 0
    for leaf, target in FIELDS.items():
        if leaf.startswith("data.source[") and not leaf.startswith(f"data.source[{kind}]"):
            continue
        want = _get(cfg, leaf.replace(f"source[{kind}]", "source"))
        assert _norm(_get(specs, target)) == _norm(want), (leaf, target)
        checked += 1
    assert checked > 50


def _spec_leaves(cls, prefix: str = "") -> set[str]:
    out = set()
    for f in dataclasses.fields(cls):
        t = typing.get_type_hints(cls)[f.name]
        inner = [a for a in (t, *typing.get_args(t)) if dataclasses.is_dataclass(a)]
        for a in typing.get_args(t):
            inner += [b for b in typing.get_args(a) if dataclasses.is_dataclass(b)]
        if inner:
            sub = "[]." if typing.get_origin(t) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(t)) else "."
            out |= _spec_leaves(inner[0], f"{prefix}{f.name}{sub}")
        else:
            out.add(f"{prefix}{f.name}")
    return out


#: Spec fields derived from several configuration fields (each still listed in FIELDS).
DERIVED = {"models[].windows": "models[].context_words with the data's modality and scoring.layer_selection"}


def test_every_spec_field_carries_a_config_field():
    assert _spec_leaves(StudySpecs) == set(FIELDS.values()) | set(DERIVED)


@pytest.mark.parametrize("kind, context_words, selection, want", [
    ("bids", "auto", "argmax", (10, 20, 32)), ("bids", "auto", "single", (32,)), ("roi_table", "auto", "argmax", (10, 20, 32)),
    ("word_erp", "auto", "argmax", (32,)), ("bids", [32, 10], "argmax", (10, 32)), ("bids", 15, "argmax", (15,))])
def test_windows_resolve_from_context_words_modality_and_selection(kind, context_words, selection, want):
    raw = _rich(kind)
    raw["models"][0].update(context="window", context_words=context_words)
    raw["scoring"].update(layer_selection=selection)
    raw["scoring"]["rsa"]["select_gt"] = False
    if kind == "bids":
        raw["data"]["source"]["datatype"] = "func"
    assert specs_from_config(validate_config(raw)).models[0].windows == want


def _names_read(path: Path) -> set[str]:
    """Attribute names read in a module (``x.name`` and ``getattr(x, "name")``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) > 1 \
                and isinstance(node.args[1], ast.Constant):
            names.add(node.args[1].value)
    return names


def test_every_spec_field_is_read():
    read = set().union(*(_names_read(p) for p in PIPELINE.glob("*.py") if p.name not in ("specs.py", "config.py", "schema.py")))
    unread = sorted(leaf for leaf in set(FIELDS.values()) if leaf.rsplit(".", 1)[-1] not in read)
    assert not unread, f"spec fields that no pipeline module reads: {unread}"


def test_option_lists_are_the_kernels_own():
    from brainalign import rsa
    from brainalign.align import METHODS
    from brainalign.encoders.hf import CONTEXTS, POOLINGS
    from brainalign.encoding import FOLD_KINDS
    from brainalign.encoding.layer_id import METHODS as LAYER_ID
    from brainalign.rsa.layers import TRANSFORMS

    assert choices.ALIGNMENT == ("auto", *METHODS)
    assert choices.CV_KINDS == FOLD_KINDS
    assert set(choices.RSA_METRICS) | set(choices.RSA_METRICS_EXCLUDED) == set(rsa.METRICS)
    assert tuple(m for m in rsa.METRICS if m in choices.RSA_METRICS) == choices.RSA_METRICS
    assert choices.RSA_COMPARE == rsa.METHODS
    assert choices.RSA_TRANSFORMS == ("none", *TRANSFORMS)
    assert choices.LAYER_SELECTION == ("argmax", *LAYER_ID, "rsa")
    assert (choices.MODEL_CONTEXTS, choices.MODEL_POOLINGS) == (CONTEXTS, POOLINGS)


def test_the_kernel_names_are_accepted_and_nothing_else():
    base = {"data": {"source": {"kind": "bids", "root": "/r"}}}
    cfg = validate_config({**base, "scoring": {"rsa": {"compare": "kendall_tau_a"}}})
    assert specs_from_config(cfg).score.rsa.compare == "kendall_tau_a"
    from brainalign.errors import ConfigError

    for bad in ({"rsa": {"compare": "kendall"}}, {"rsa": {"metric": "mahalanobis"}}, {"permutations": -1}):
        with pytest.raises(ConfigError, match="scoring"):
            validate_config({**base, "scoring": bad})
    with pytest.raises(ConfigError, match="statistics.compare_baseline"):
        validate_config({**base, "statistics": {"compare_baseline": True}})
