"""Noise ceilings (``statistics.ceiling``): inter-subject or split-half across repeated runs.

A ceiling is the highest Pearson r that any stimulus-driven prediction of the
scored data could reach, per target; ``r_norm = r / ceiling``. Two estimates:

``loo_isc``
    Leave-one-out inter-subject correlation: r of a participant's data with the
    mean of the other participants' data (same stimulus, same targets, three or
    more participants). It measures the response shared across people, so it is a
    ceiling for the shared, stimulus-driven part only (uncorrected for the noise
    left in the mean of the others: a conservative, low estimate).
``split_half``
    One participant's own repeat reliability (:func:`split_half_runs`): needs two or
    more runs of the *same* stimulus (the same words at the same onsets). Runs that
    are different parts of a story (the usual naturalistic design, and the demo and
    ``brainalign simulate`` datasets) have no repeat: no ceiling is given there,
    with the reason recorded, rather than a number that is not a ceiling.
``auto`` (the default)
    ``loo_isc`` when three or more participants share the stimulus and the targets
    (not for iEEG, whose electrodes differ per patient); otherwise ``split_half`` for
    each participant whose runs repeat; otherwise none. The kind used, what it
    estimates and why a ceiling is missing go to the result's attrs, the sidecar's
    ``Statistics`` and the report.

The ceiling is computed from the preprocessed recordings the participant tasks
already loaded (each task hands its :class:`CeilingData` back with its scores),
so no participant is read twice; participants outside the run (not selected, or
already up to date) are loaded once by :func:`load_others`.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

from ..errors import DataError, InputError

#: The ceilings ``statistics.ceiling`` can name (besides "none" and "auto").
CEILINGS = ("loo_isc", "split_half")
#: Every value of ``statistics.ceiling``.
CHOICES = ("auto", "none") + CEILINGS
#: Fewest usable participants a leave-one-out ceiling needs.
MIN_PARTICIPANTS = 3
#: Fewest samples common to every run for a split-half ceiling.
MIN_SAMPLES = 10

ESTIMATES = {
    "loo_isc": "leave-one-out inter-subject correlation: Pearson r of this participant's data with the mean of the "
               "other {n} participants' data per target (the shared stimulus-driven part; not noise-corrected, a low "
               "estimate)",
    "split_half": "split-half across {n} repeated runs of the same stimulus: r of the mean of the odd runs with the mean "
                  "of the even runs per target, Spearman-Brown corrected to the reliability rho_1 of one run; ceiling "
                  "= sqrt(rho_1), the highest Pearson r any stimulus-driven prediction of a single run can reach "
                  "(NaN where rho_1 <= 0)",
}


@dataclass(frozen=True)
class CeilingData:
    """What a ceiling needs from one participant (preprocessed, before alignment).

    Attributes
    ----------
    values : ndarray, shape (n_samples, n_targets)
        The cleaned recording, runs one after the other.
    runs : ndarray of str, shape (n_samples,)
    times : ndarray, shape (n_samples,)
        Acquisition times (s) on each run's clock.
    period : float
        Sampling period (s): the TR or 1 / sfreq (1 for per-word data).
    targets : tuple of str
        Target identities (with the voxel grid for volumes).
    words : dict run -> tuple of str
    onsets : dict run -> ndarray (s)
    modality : str
    """

    values: np.ndarray
    runs: np.ndarray
    times: np.ndarray
    period: float
    targets: tuple
    words: dict = field(default_factory=dict)
    onsets: dict = field(default_factory=dict)
    modality: str = "fmri"


@dataclass(frozen=True)
class Ceiling:
    """One participant's ceiling: the kind used (``"none"`` without one), values (n_targets,) or None, why."""

    kind: str
    values: np.ndarray | None = None
    requested: str = "auto"
    estimate: str = ""
    reason: str = ""
    warning: str | None = None


def ceiling_data(recording, stimulus) -> CeilingData:
    """:class:`CeilingData` of a cleaned recording (time, target) and its stimulus table (word, onset, run)."""
    attrs = dict(getattr(recording, "attrs", {}))
    period = float(attrs["tr"]) if attrs.get("tr") else (1.0 / float(attrs["sfreq"]) if attrs.get("sfreq") else 1.0)
    grid = json.dumps([np.asarray(attrs.get("affine", [])).round(6).tolist(),
                       np.asarray(attrs.get("volume_shape", [])).tolist()])
    runs = np.asarray(recording["run"].values).astype(str)
    coords = getattr(recording, "coords", {})
    ids = (np.stack([np.asarray(recording[c].values) for c in ("voxel_i", "voxel_j", "voxel_k")], 1).tolist()
           if all(c in coords for c in ("voxel_i", "voxel_j", "voxel_k")) else recording["target"].values)
    words, onsets = {}, {}
    if stimulus is not None and "run" in stimulus:
        for run, part in stimulus.groupby(stimulus["run"].astype(str), sort=False):
            words[run] = tuple(part["word"].astype(str))
            onsets[run] = part["onset"].to_numpy(dtype=np.float64)
    return CeilingData(values=np.asarray(recording.values, dtype=np.float64), runs=runs,
                       times=np.asarray(recording["time"].values, dtype=np.float64), period=period,
                       targets=(grid,) + tuple(str(t) for t in ids),  # voxel positions, or target names
                       words=words, onsets=onsets, modality=str(attrs.get("modality", "fmri")))


def check_participants(n: int) -> None:
    """Refuse a leave-one-out ceiling over fewer than :data:`MIN_PARTICIPANTS` participants."""
    if n < MIN_PARTICIPANTS:
        raise InputError(f"statistics.ceiling: loo_isc needs at least {MIN_PARTICIPANTS} usable participants, found {n} "
                         "(use split_half for repeated runs of one participant, or auto)")


def needs_everyone(kind: str, n_participants: int) -> bool:
    """Whether ``kind`` needs every one of the source's ``n_participants`` (the inter-subject ceiling)."""
    return kind == "loo_isc" or (kind == "auto" and n_participants >= MIN_PARTICIPANTS)


def load_others(subjects: Iterable[str], have: Mapping[str, object],
                load: Callable[[str], object]) -> dict[str, object]:
    """Data of the participants in ``subjects`` not in ``have``, from ``load`` (unusable ones skipped)."""
    out = {}
    for s in subjects:
        if s in have:
            continue
        try:
            out[s] = load(s)
        except DataError:  # an unusable participant joins no ceiling
            continue
    return out


def loo_isc(data: Mapping[str, np.ndarray], order: Iterable[str]) -> dict[str, list[float]]:
    """Leave-one-out inter-subject correlation per participant and target.

    Parameters
    ----------
    data : mapping participant -> ndarray, shape (n_samples, n_targets)
        Preprocessed recordings, the same shape for everyone.
    order : iterable of str
        The participants in the order they are averaged (the source's order);
        those missing from ``data`` are skipped.

    Returns
    -------
    dict participant -> list of float (n_targets,)
        Pearson r of each participant's target with the mean of the others
        (finite samples only; NaN with fewer than 3).
    """
    subjects = [s for s in order if s in data]
    check_participants(len(subjects))
    shapes = {np.shape(data[s]) for s in subjects}
    if len(shapes) != 1:
        raise InputError(f"statistics.ceiling: loo_isc needs the same samples x targets for everyone; "
                         f"got shapes {sorted(shapes)}")
    stack = np.stack([np.asarray(data[s], dtype=np.float64) for s in subjects])  # (n_subj, n, t)
    out = {}
    for i, s in enumerate(subjects):
        with warnings.catch_warnings():  # samples missing in every other participant stay NaN, dropped below
            warnings.simplefilter("ignore", RuntimeWarning)
            others = np.nanmean(np.delete(stack, i, axis=0), axis=0)
        a, b = stack[i], others
        ok = np.isfinite(a) & np.isfinite(b)
        r = []
        for t in range(a.shape[1]):
            m = ok[:, t]
            r.append(float(np.corrcoef(a[m, t], b[m, t])[0, 1]) if m.sum() > 2 else float("nan"))
        out[s] = r
    return out


def _one_run_reliability(rho: np.ndarray, a: int, b: int) -> np.ndarray:
    """Single-run reliability from the r of a mean of ``a`` runs with a mean of ``b`` runs (Spearman-Brown).

    Under x_run = s + e_run (noise independent, equal variance across runs),
    corr(mean of a, mean of b) = 1 / sqrt((1 + l/a)(1 + l/b)) with l = var(e) / var(s);
    solved for l, rho_1 = 1 / (1 + l). With a = b = k this is rho_h / (k - (k - 1) rho_h).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(rho > 0, rho, np.nan)
        qa, qb, qc = 1.0 / (a * b), 1.0 / a + 1.0 / b, 1.0 - 1.0 / c ** 2  # qa l^2 + qb l + qc = 0, l >= 0
        lam = (-qb + np.sqrt(qb ** 2 - 4 * qa * qc)) / (2 * qa)
        return 1.0 / (1.0 + lam)


def split_half_runs(data: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Noise ceiling of one participant from repeated runs of the same stimulus (split-half across runs).

    The runs are split into odd and even (in order of appearance), each half is
    averaged, and the Pearson r of the two half means is corrected (Spearman-Brown,
    exact for halves of unequal size) down to the reliability ``rho_1`` of a
    single run. The ceiling on the r of any stimulus-driven prediction of one run
    (what the encoding scores are: each held-out sample is one run's sample) is
    ``sqrt(rho_1)``: with x_run = s + e_run, corr(s, x_run) = sqrt(rho_1). It assumes
    the same response in every repeat (no adaptation) and independent noise.

    Parameters
    ----------
    data : ndarray, shape (n_samples, n_targets)
        Preprocessed recording, runs one after the other, sample i of every run at
        the same time after the stimulus onset.
    runs : ndarray, shape (n_samples,)
        Run label of each sample; every run must have the same number of samples.

    Returns
    -------
    ndarray, shape (n_targets,)
        Ceiling per target, a correlation (unitless, in (0, 1]); NaN where the
        half means do not correlate positively.

    Raises
    ------
    InputError
        Fewer than two runs, or runs of different lengths.
    """
    runs = np.asarray(runs)
    labels = list(dict.fromkeys(runs.tolist()))
    lengths = {int(np.sum(runs == lab)) for lab in labels}
    if len(labels) < 2 or len(lengths) != 1:
        raise InputError(f"a split-half ceiling needs two or more runs of one repeated stimulus with equal lengths; "
                         f"got {len(labels)} run(s) of lengths {sorted(lengths)}")
    stack = np.stack([np.asarray(data, dtype=np.float64)[runs == lab] for lab in labels])  # (n_runs, n, t)
    a, b = stack[0::2].mean(0), stack[1::2].mean(0)
    a, b = a - a.mean(0), b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho_h = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    rho_1 = _one_run_reliability(rho_h, len(stack[0::2]), len(stack[1::2]))
    return np.where(rho_1 > 0, np.sqrt(np.where(rho_1 > 0, rho_1, 0.0)), np.nan)


# ------------------------------------------------------------- repeated runs
def repeat_problem(cd: CeilingData) -> str | None:
    """Why ``cd``'s runs are not repeats of one stimulus (None when they are).

    Repeats: two or more runs, each with the same words in the same order at the
    same onsets (within half a sampling period) on its own clock.
    """
    labels = list(dict.fromkeys(cd.runs.tolist()))
    if len(labels) < 2:
        return f"only {len(labels)} run: a split-half ceiling needs two or more runs of the same stimulus"
    if any(lab not in cd.words for lab in labels):
        return "the stimulus table has no words for some runs: cannot tell whether the runs repeat"
    first = labels[0]
    for lab in labels[1:]:
        if cd.words[lab] != cd.words[first]:
            return (f"runs {first} and {lab} present different words (different parts of the stimulus, not repeats): "
                    "a split-half across them is not a noise ceiling")
        gap = float(np.max(np.abs(cd.onsets[lab] - cd.onsets[first]))) if len(cd.words[first]) else 0.0
        if gap > cd.period / 2:
            return f"runs {first} and {lab} have the same words at onsets up to {gap:.3g} s apart: not repeats"
    return None


def _common_samples(cd: CeilingData) -> tuple[np.ndarray, np.ndarray]:
    """(data, runs) of the samples whose time exists in every run (runs may have lost different volumes)."""
    labels = list(dict.fromkeys(cd.runs.tolist()))
    keys = np.round(cd.times / cd.period * 1000).astype(np.int64)
    common = set(keys[cd.runs == labels[0]].tolist())
    for lab in labels[1:]:
        common &= set(keys[cd.runs == lab].tolist())
    keep = np.isin(keys, sorted(common))
    rows = []
    for lab in labels:
        idx = np.flatnonzero(keep & (cd.runs == lab))
        rows.append(idx[np.argsort(keys[idx], kind="stable")])
    idx = np.concatenate(rows)
    return cd.values[idx], cd.runs[idx]


def split_half(cd: CeilingData) -> tuple[np.ndarray | None, str]:
    """(ceiling (n_targets,) or None, the reason there is none) of one participant's repeated runs."""
    problem = repeat_problem(cd)
    if problem is not None:
        return None, problem
    data, runs = _common_samples(cd)
    n_runs = len(set(runs.tolist()))
    if data.shape[0] < MIN_SAMPLES * n_runs:
        return None, f"the repeated runs share fewer than {MIN_SAMPLES} sample times"
    return split_half_runs(data, runs), ""


# ----------------------------------------------------------------- the study
def loo_problem(data: Mapping[str, CeilingData]) -> str | None:
    """Why a leave-one-out ceiling does not apply to these participants (None when it does)."""
    if len(data) < MIN_PARTICIPANTS:
        return f"{len(data)} usable participant(s); the inter-subject ceiling needs {MIN_PARTICIPANTS} or more"
    cds = list(data.values())
    if any(cd.modality == "ieeg" for cd in cds):
        return "iEEG electrodes differ between patients: no inter-subject ceiling"
    if len({cd.targets for cd in cds}) != 1:
        return "participants have different targets (voxels, channels or regions): no inter-subject ceiling"
    if len({cd.values.shape for cd in cds}) != 1 or any(not np.array_equal(cd.runs, cds[0].runs) for cd in cds):
        return "participants have different numbers of samples or runs: no inter-subject ceiling"
    if any(cd.words != cds[0].words for cd in cds):
        return "participants were presented different words: no inter-subject ceiling"
    return None


def _split_each(subjects, data, requested: str, why: str = "") -> dict[str, Ceiling]:
    out = {}
    for s in subjects:
        values, reason = split_half(data[s]) if s in data else (None, "no data for the ceiling")
        if values is not None:
            n = len(set(data[s].runs.tolist()))
            out[s] = Ceiling("split_half", values, requested, ESTIMATES["split_half"].format(n=n),
                             f"{why}; each participant's repeated runs used" if why else "")
        else:
            reason = f"{why}; {reason}" if why else reason
            out[s] = Ceiling("none", None, requested, "", reason,
                             f"statistics.ceiling: split_half not computed: {reason}" if requested == "split_half" else None)
    return out


def study_ceilings(kind: str, data: Mapping[str, CeilingData], everyone: Iterable[str] | None,
                   subjects: Iterable[str]) -> dict[str, Ceiling]:
    """The :class:`Ceiling` of each participant in ``subjects`` for ``statistics.ceiling: kind``.

    ``data`` holds the participants' :class:`CeilingData` (with the others of the
    source for an inter-subject ceiling); ``everyone`` is the source's order.
    Raises :class:`InputError` only for an explicit ``loo_isc`` that cannot apply.
    """
    subjects = list(subjects)
    if kind == "none":
        return {s: Ceiling("none", None, kind, "", "statistics.ceiling: none") for s in subjects}
    if kind == "split_half":
        return _split_each(subjects, data, kind)
    order = [s for s in (everyone or data) if s in data]
    usable = {s: data[s] for s in order}
    problem = loo_problem(usable)
    if problem is None:
        isc = loo_isc({s: cd.values for s, cd in usable.items()}, order)
        est = ESTIMATES["loo_isc"].format(n=len(order) - 1)
        return {s: Ceiling("loo_isc", np.asarray(isc[s], dtype=np.float64), kind, est) if s in isc
                else Ceiling("none", None, kind, "", "no data for the ceiling") for s in subjects}
    if kind == "loo_isc":
        raise InputError(f"statistics.ceiling: loo_isc cannot apply: {problem}")
    return _split_each(subjects, data, kind, why=problem)


def own_ceiling(kind: str, subject: str, cd: CeilingData, n_participants: int) -> Ceiling:
    """The ceiling of ``subject`` from its own runs, for ``split_half`` and for ``auto`` when no
    inter-subject ceiling is possible (fewer than :data:`MIN_PARTICIPANTS` in the source)."""
    why = "" if kind == "split_half" else (f"{n_participants} participant(s) in the source; the inter-subject "
                                           f"ceiling needs {MIN_PARTICIPANTS} or more")
    return _split_each([subject], {subject: cd}, kind, why)[subject]


def record(ds, c: Ceiling | None) -> None:
    """Write the ceiling used into ``ds.attrs`` (``ceiling_kind``, ``statistics`` JSON, ``warnings``), in place."""
    if c is None:
        return
    ds.attrs["ceiling_kind"] = c.kind
    rec = json.loads(ds.attrs.get("statistics") or "{}")
    rec.update(ceiling=c.kind, ceiling_requested=c.requested, ceiling_estimate=c.estimate or None,
               ceiling_reason=c.reason or None)
    ds.attrs["statistics"] = json.dumps(rec, sort_keys=True)
    if c.warning:
        warns = json.loads(ds.attrs.get("warnings") or "[]")
        ds.attrs["warnings"] = json.dumps(list(dict.fromkeys(warns + [c.warning])))


def describe(attrs: Mapping) -> str:
    """One sentence for reports: the ceiling used and what it estimates, or why there is none."""
    try:
        rec = json.loads(attrs.get("statistics") or "{}")
    except ValueError:
        rec = {}
    kind = rec.get("ceiling") or attrs.get("ceiling_kind")
    if kind in CEILINGS:
        return f"Noise ceiling ({kind}): {rec.get('ceiling_estimate') or kind}."
    if kind is None:
        return "No noise ceiling in this result (written before the ceiling was recorded; statistics.ceiling)."
    return f"No noise ceiling in this result: {rec.get('ceiling_reason') or 'statistics.ceiling: none'}."
