"""The only place the pipeline writes files: a BIDS derivative dataset.

Every file is written to a temporary name in its final folder and moved into place
with :func:`os.replace`, so a crash never leaves a half-written output. The JSON
sidecar of a participant's scores is written last and records the configuration
hash, the files written, the SHA-256 of every input file read and the model's
identity: its presence with all of these matching means "done" (see :func:`is_done`).
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Sequence

import nibabel as nib
import numpy as np
import pandas as pd
import xarray as xr

from .._version import __version__
from ..errors import check_safe_label
from . import surface_maps
from .provenance import input_hashes, inputs_unchanged, model_identity, model_unchanged, sources_of
from .geometry_scores import geometry_rows

SCORE_COLUMNS = ("subject", "session", "task", "model", "layer", "target", "method", "metric", "fold", "value")
COLUMN_DESCRIPTIONS = {
    "subject": "participant label (without 'sub-')",
    "session": ("BIDS session label (without 'ses-'); n/a when the data have no sessions; sessions fitted together "
                "(data.source.pool_sessions) are joined by '+'"),
    "task": "BIDS task label",
    "model": "model label; the baseline model's rows carry the baseline label",
    "layer": "model layer (0 = embeddings); n/a for the baseline and the ceiling",
    "target": ("target identity: flat C-order voxel index in the input's volume grid (volumetric fMRI), "
               "'<hemi>_<vertex>' (GIFTI surfaces, e.g. L_1024), grayordinate index along the input's brain "
               "models axis (CIFTI), ROI name, channel name or ERP measure; kept when other targets are dropped"),
    "method": "'encoding' (cross-validated ridge), 'rsa' or 'geometry' (brainalign.geometry)",
    "metric": (
        "r: mean over outer folds of Pearson r on held-out data (baseline + layer when a baseline "
        "is configured); alpha: ridge penalty (median over folds for fold n/a); p: one-sided p "
        "(refit circular-shift null, or the uncalibrated t-test of fold r > 0 with scoring.permutations: 0; "
        "the sidecar's Statistics says which); p_fdr: Benjamini-Hochberg q over layer x target; "
        "ceiling: noise ceiling; r_norm: r / ceiling; delta_r: r(baseline + layer) - r(baseline); "
        "rsa metrics: RDM comparison (e.g. spearman); layer_id: layer chosen by scoring.layer_selection "
        "(layer_id_score: its criterion per layer); p_best: bootstrap share of RSA layer identification; "
        "encoding p_best: share of block-bootstrap draws of the held-out predictions in which the layer has the "
        "highest r, in_credible_set: 1 when the layer is not distinguishable from the best (sidecar "
        "LayerUncertainty), r_ci_low/r_ci_high: bootstrap interval of r; mean_r, mean_p_best, "
        "mean_in_credible_set, mean_r_ci_low, mean_r_ci_high: the same for the mean r over the targets "
        "'all' or 'significant' (p_fdr < q at some layer); "
        "context_words: the context window (words) chosen with the layer for the target when models[].context_words "
        "is a list (mean_context_words: for a summary set; method rsa: per region), r_context<W>: r at window W "
        "(the sidecar's WindowSelection; p is Bonferroni-adjusted for the windows); "
        "geometry: mutual_knn, cycle_knn, cknna, cka (similarities), shape, shape_cv (distances, radians when "
        "angular) between a region's patterns and the layer's on the RSA items, id: the layer's intrinsic "
        "dimension over words (target 'all')"
    ),
    "fold": "outer CV fold index, n/a for values pooled over folds",
    "value": "the number",
}
DATATYPE = {"fmri": "func", "meg": "meg", "eeg": "eeg", "ieeg": "ieeg", "erp": "eeg"}
BIDS_VERSION = "1.9.0"


# --------------------------------------------------------------------- atomic writes
def process_umask() -> int:
    """The process umask, read without changing it where ``/proc`` tells it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: set and restore at once
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give it
    (``0o666 & ~umask``), not :func:`tempfile.mkstemp`'s private 0600; folders are
    made with the umask as usual.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~process_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_tsv(path: str | Path, df: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.9g")
    return Path(path)


def write_nifti(path: str | Path, img) -> Path:
    with atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(img, str(tmp))
    return Path(path)


# ------------------------------------------------------------------------ naming
def session_entity(session: str | None) -> str | None:
    """The ``ses-`` label of a result's file names: its session, None without one or for pooled sessions."""
    if not session or "+" in str(session):
        return None
    return check_safe_label(str(session), "session")


def participant_dir(out_dir, subject: str, modality: str, session: str | None = None) -> Path:
    d = Path(out_dir) / f"sub-{check_safe_label(subject, 'participant')}"
    ses = session_entity(session)
    return (d / f"ses-{ses}" if ses else d) / DATATYPE.get(modality, "func")


def _prefix(subject: str, session: str | None) -> str:
    ses = session_entity(session)
    return f"sub-{subject}" + (f"_ses-{ses}" if ses else "")


def scores_path(out_dir, subject: str, task: str, model: str, modality: str, session: str | None = None) -> Path:
    check_safe_label(task, "task")
    check_safe_label(model, "model label")
    return (participant_dir(out_dir, subject, modality, session)
            / f"{_prefix(subject, session)}_task-{task}_desc-{model}_scores.tsv")


def map_path(out_dir, subject: str | None, task: str, model: str, layer: int, stat: str = "r",
             session: str | None = None) -> Path:
    stem = f"task-{task}_desc-{model}L{int(layer):02d}_stat-{stat}_statmap.nii.gz"
    if subject is None:
        return Path(out_dir) / "group" / stem
    return participant_dir(out_dir, subject, "fmri", session) / f"{_prefix(subject, session)}_{stem}"


def group_scores_path(out_dir, task: str, model: str) -> Path:
    return Path(out_dir) / "group" / f"task-{check_safe_label(task, 'task')}_desc-{check_safe_label(model, 'model label')}_scores.tsv"


# ----------------------------------------------------------------- dataset level
def write_dataset_description(out_dir, source_datasets: Sequence[str] = (), name: str = "brainalign") -> Path:
    desc = {
        "Name": f"{name} alignment scores",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "brainalign", "Version": __version__,
                         "Description": "layer-wise language model to brain alignment (ridge encoding, RSA)"}],
        "SourceDatasets": [{"URL": Path(s).resolve().as_uri() if not str(s).startswith(("http", "doi")) else str(s)}
                           for s in source_datasets],
    }
    path = Path(out_dir) / "dataset_description.json"
    return write_json(path, desc)


# ------------------------------------------------------------------- long table
def scores_table(ds: xr.Dataset, *, baseline_label: str | None = "baseline", save_folds: bool | None = None,
                 rsa_metric: str | None = None) -> pd.DataFrame:
    """The long-format scores table of one result (columns :data:`SCORE_COLUMNS`)."""
    subj, task, model = ds.attrs["subject"], ds.attrs["task"], ds.attrs["model"]
    if save_folds is None:
        save_folds = ds.sizes.get("target", 0) <= 5000
    parts = []

    def add(var: xr.DataArray, metric: str, method: str = "encoding", model_name: str | None = None):
        dims = [d for d in ("layer", "fold", "target", "region") if d in var.dims]
        frame = var.transpose(*dims).to_dataframe(name="value").reset_index()
        frame = frame[[c for c in frame.columns if c in ("layer", "fold", "target", "region", "value")]]
        if "region" in frame:
            frame = frame.rename(columns={"region": "target"})
        frame["metric"], frame["method"], frame["model"] = metric, method, model_name or model
        parts.append(frame)

    if "r" in ds:
        for v in ("r", "r_norm", "p", "p_fdr", "delta_r"):
            if v in ds:
                add(ds[v], v)
        add(ds["alpha"].median("fold"), "alpha")
        if save_folds:
            add(ds["r_folds"], "r")
            add(ds["alpha"], "alpha")
    if "ceiling" in ds:
        add(ds["ceiling"], "ceiling")
    if "baseline_r" in ds and baseline_label:
        add(ds["baseline_r"], "r", model_name=baseline_label)
        if save_folds:
            add(ds["baseline_r_folds"], "r", model_name=baseline_label)
    if "rsa" in ds:
        add(ds["rsa"], rsa_metric or ds.attrs.get("rsa_metric", "spearman"), method="rsa")
    if "layer_id" in ds:  # scoring.layer_selection: the chosen layer per target and its criterion
        add(ds["layer_id"].astype(float), "layer_id")
        add(ds["layer_id_score"], "layer_id_score")
    if "rsa_layer_id" in ds:
        add(ds["rsa_layer_id"].astype(float).expand_dims(region=["all"]), "layer_id", method="rsa")
        add(ds["rsa_layer_p_best"].expand_dims(region=["all"]).transpose("layer", "region"), "p_best", method="rsa")
    if "p_best" in ds:  # issue 14: the bootstrap of the layer choice (pipeline/uncertainty.py)
        for v in ("p_best", "in_credible_set", "r_ci_low", "r_ci_high"):
            add(ds[v].astype(float), v)
        for v in ("r", "p_best", "in_credible_set", "r_ci_low", "r_ci_high"):
            add(ds[f"summary_{v}"].astype(float).rename(summary="region"), f"mean_{v}")
    _window_rows(ds, add)
    for var, metric in geometry_rows(ds):  # scoring.methods geometry
        add(var, metric, method="geometry")
    if not parts:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    df = pd.concat(parts, ignore_index=True)
    df["subject"], df["task"] = subj, task
    df["session"] = str(ds.attrs.get("session") or "") or pd.NA
    for col in ("layer", "fold"):
        if col not in df:
            df[col] = pd.NA
        df[col] = df[col].astype("Int64")
    df["target"] = df["target"].astype(str)
    return df[list(SCORE_COLUMNS)]


def _window_rows(ds: xr.Dataset, add) -> None:
    """Rows of a window grid (pipeline/windows.py): each target's chosen window and every window's r."""
    if "context_words" in ds:
        add(ds["context_words"].astype(float), "context_words")
    if "summary_context_words" in ds:
        add(ds["summary_context_words"].astype(float).rename(summary="region"), "mean_context_words")
    if "rsa_context_words" in ds:
        add(ds["rsa_context_words"].astype(float), "context_words", method="rsa")
    if "window_r" in ds:
        for w in ds["window"].values:
            add(ds["window_r"].sel(window=w, drop=True), f"r_context{int(w)}")


# -------------------------------------------------------------------------- maps
def result_geometry(ds: xr.Dataset):
    """(affine (4, 4), grid shape (3,)) of a volumetric result, or None."""
    if "affine" not in ds.attrs or "grid_shape" not in ds.attrs:
        return None
    aff = np.asarray(json.loads(ds.attrs["affine"]), dtype=float)
    shape = tuple(int(s) for s in json.loads(ds.attrs["grid_shape"]))
    return aff, shape


def flat_index(ds) -> np.ndarray:
    """Flat C-order voxel index of each target (coord ``voxel_flat``, else the target value)."""
    src = ds["voxel_flat"] if "voxel_flat" in ds.coords else ds["target"]
    return np.asarray(src.values, dtype=np.int64)


def to_volume(values: np.ndarray, flat_index: np.ndarray, shape, affine):
    """Values at flat voxel indices (C order) -> float32 NIfTI image, NaN elsewhere."""
    vol = np.full(int(np.prod(shape)), np.nan, dtype=np.float32)
    vol[np.asarray(flat_index, dtype=np.int64)] = np.asarray(values, dtype=np.float32)
    img = nib.Nifti1Image(vol.reshape(shape), affine)
    img.header.set_xyzt_units("mm")
    return img


def write_maps(ds: xr.Dataset, out_dir, subject: str | None = None, var: str = "r") -> list[Path]:
    """One NIfTI per layer of ``var`` in the input grid (NaN outside the mask); surfaces: :func:`write_surface_maps`."""
    geo = result_geometry(ds)
    if geo is None and surface_maps.is_surface(ds):
        return write_surface_maps(ds, out_dir, subject, var)
    if geo is None or var not in ds:
        return []
    affine, shape = geo
    idx = flat_index(ds)
    paths = []
    for layer in ds["layer"].values:
        img = to_volume(ds[var].sel(layer=layer).values, idx, shape, affine)
        paths.append(write_nifti(map_path(out_dir, subject, ds.attrs["task"], ds.attrs["model"], int(layer), var,
                                          session=ds.attrs.get("session") if subject else None), img))
    return paths


def write_surface_maps(ds: xr.Dataset, out_dir, subject: str | None = None, var: str = "r") -> list[Path]:
    """Per layer of ``var``: a GIFTI per hemisphere or a CIFTI dscalar (built by :mod:`.surface_maps`).

    Named as the volumetric map with the surface entities before ``desc-``:
    ``..._hemi-L_space-fsaverage5_desc-<model>L<NN>_stat-<var>_statmap.func.gii``,
    ``..._space-fsLR_den-91k_desc-<model>L<NN>_stat-<var>_statmap.dscalar.nii``.
    """
    paths = []
    for layer, entities, ext, img in surface_maps.surface_images(ds, var):
        vol = map_path(out_dir, subject, ds.attrs["task"], ds.attrs["model"], layer, var,
                       session=ds.attrs.get("session") if subject else None)
        path = vol.with_name(surface_maps.surface_map_name(vol.name, entities, ext))
        with atomic_path(path, suffix=ext) as tmp:
            nib.save(img, str(tmp))
        paths.append(path)
    return paths


# ------------------------------------------------------------------ participant
def write_participant(ds: xr.Dataset, out_dir, *, config_hash: str | None = None, maps: bool = True,
                      save_folds: bool | None = None, baseline_label: str | None = "baseline",
                      extra: dict | None = None) -> list[Path]:
    """Write one participant x model result: maps, scores TSV, then the JSON sidecar.

    Returns the files written (the sidecar last).
    """
    subj, task, model = ds.attrs["subject"], ds.attrs["task"], ds.attrs["model"]
    modality = ds.attrs.get("modality", "fmri")
    tsv = scores_path(out_dir, subj, task, model, modality, session=ds.attrs.get("session"))
    files = write_maps(ds, out_dir, subj) if maps else []
    table = scores_table(ds, baseline_label=baseline_label, save_folds=save_folds)
    files.append(write_tsv(tsv, table))
    side = {
        "Description": "brainalign layer-wise alignment scores (long format)",
        **{k: v for k, v in COLUMN_DESCRIPTIONS.items()},
        "Columns": list(SCORE_COLUMNS),
        "ConfigHash": config_hash or ds.attrs.get("config_hash", ""),
        "Settings": json.loads(ds.attrs.get("settings", "{}")),
        "Versions": json.loads(ds.attrs.get("versions", "{}")),
        "Alignment": ds.attrs.get("alignment"),
        "AlignmentDelays": json.loads(ds.attrs.get("alignment_delays", "null")),  # samples; [] for word methods
        "Modality": modality,
        "NSamples": ds.attrs.get("n_samples"),
        "Warnings": json.loads(ds.attrs.get("warnings", "[]")),
        "LayerUncertainty": json.loads(ds.attrs.get("layer_uncertainty", "null")),  # issue 14
        "WindowSelection": json.loads(ds.attrs.get("window_selection", "null")),  # context_words chosen with the layer
        "Statistics": json.loads(ds.attrs.get("statistics", "{}")),  # p_method, n_permutations, fdr_family, fdr_q
        "Sources": json.loads(ds.attrs.get("sources", "[]")),
        "Session": ds.attrs.get("session") or None,
        "Preprocessing": _preprocessing(ds.attrs),
        "InputHashes": input_hashes(sources_of(ds.attrs)),
        "Model": model_identity(ds.attrs, model),
        "Files": sorted(str(p.relative_to(out_dir)) for p in files),
    }
    if extra:
        side.update(extra)
    # the result itself, for the group level and for reports (netCDF, no pickle)
    nc = tsv.with_name(tsv.name.replace("_scores.tsv", "_result.nc"))
    with atomic_path(nc, suffix=".nc") as tmp:
        _clean_for_netcdf(ds).to_netcdf(tmp)
    files.append(nc)
    side["Files"] = sorted(str(p.relative_to(out_dir)) for p in files)
    files.append(write_json(tsv.with_suffix(".json"), side))
    return files


def _preprocessing(attrs: dict) -> dict:
    """What the cleaning step did (confound strategy, columns, dropped volumes) and the data's mask and space."""
    try:
        out = json.loads(attrs.get("preprocessing") or "{}")
    except ValueError:
        out = {}
    out.setdefault("Mask", attrs.get("data_mask"))
    out["Space"] = attrs.get("data_space")
    return out


def _clean_for_netcdf(ds: xr.Dataset) -> xr.Dataset:
    out = xr.Dataset(ds.data_vars, coords=ds.coords, attrs={k: (v if isinstance(v, (str, int, float)) else json.dumps(v, default=_jsonable)) for k, v in ds.attrs.items()})
    for c in ("target", "region"):
        if c in out.coords and out[c].dtype == object:
            out = out.assign_coords({c: out[c].astype(str)})
    return out


def is_done(out_dir, subject: str, task: str, model: str, modality: str, config_hash: str, *,
            cache_dir: str | os.PathLike | None = None) -> bool:
    """True when the participant x model outputs can be reused as they are.

    That is: the sidecar exists with configuration hash ``config_hash``, every file
    it lists exists, every input file it records (``InputHashes``) still has the
    same SHA-256, and the model folder it records (``Model``) still has the same
    content fingerprint (memoised under ``cache_dir``, see
    :func:`brainalign.encoders.cache.fingerprint_folder`).
    """
    base = scores_path(out_dir, subject, task, model, modality).with_suffix(".json")
    ses = sorted(base.parents[1].glob(f"ses-*/{base.parent.name}/sub-{subject}_ses-*_task-{task}_desc-{model}_scores.json"))
    meta = next((m for m in map(_read_sidecar, [base, *ses]) if m.get("ConfigHash") == config_hash), None)
    if meta is None:  # no sidecar of this configuration (the session is part of it)
        return False
    if not all((Path(out_dir) / f).is_file() for f in meta.get("Files", [])):
        return False
    return inputs_unchanged(meta.get("InputHashes")) and model_unchanged(meta.get("Model"), cache_dir)


def _read_sidecar(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def read_result(path) -> xr.Dataset:
    """Read a participant result written by :func:`write_participant` (netCDF)."""
    with xr.open_dataset(path) as ds:
        return ds.load()


def find_results(out_dir, task: str | None = None, model: str | None = None) -> list[Path]:
    pat = f"sub-*_task-{task or '*'}_desc-{model or '*'}_result.nc"
    return sorted({*Path(out_dir).glob(f"sub-*/*/{pat}"), *Path(out_dir).glob(f"sub-*/ses-*/*/{pat}")})


# ------------------------------------------------------------------------- group
def write_group(table: pd.DataFrame, out_dir, task: str, model: str, *, settings: dict,
                maps: Iterable[tuple[int, Any]] = (), surface: xr.Dataset | None = None) -> list[Path]:
    """Group table (+ sidecar) and group maps (layer, image); ``surface``: a mean-r surface result (GIFTI/CIFTI maps)."""
    files = [write_nifti(map_path(out_dir, None, task, model, layer, "r"), img) for layer, img in maps]
    if surface is not None:
        files += write_surface_maps(surface, out_dir, None)
    tsv = group_scores_path(out_dir, task, model)
    files.append(write_tsv(tsv, table))
    files.append(write_json(tsv.with_suffix(".json"), {
        "Description": "brainalign group statistics over participants (long format)",
        "Columns": list(table.columns), "Settings": settings,
        "Files": sorted(str(p.relative_to(out_dir)) for p in files)}))
    return files


def write_report(path, html: str) -> Path:
    return write_text(path, html)


def write_failures(out_dir, failures: dict[str, str]) -> Path | None:
    """``logs/failures.json``: participant -> one-line reason (removed when none)."""
    path = Path(out_dir) / "logs" / "failures.json"
    if not failures:
        if path.exists():
            path.unlink()
        return None
    return write_json(path, failures)
