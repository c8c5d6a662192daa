"""Damaged data (events, BOLD, sidecars, masks) run through the real CLI (see tests/_damaged_cases.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _damaged_cases import (
    EXIT_PARTIAL,
    Ran,
    STEM,
    _bold,
    _data_case,
    _edit_events,
    _events,
    _rewrite_bold,
    _write_mask,
    base_config,
    check_case,
    cli,
    collect,
    copy_dataset,
    error_lines,
    participant,
    run_cases,
    stray_temp_files,
)


def c_negative_onsets(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(onset=t.onset - 100)), "run-1_events.tsv")


def c_onsets_past_end(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(onset=t.onset + 500)), "run-1_events.tsv")


def c_onsets_in_ms(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(onset=t.onset * 1000)), "milliseconds")


def c_missing_events(w, tmp):
    return _data_case(w, tmp, lambda ds: _events(ds).unlink(), "run-1_events.tsv")


def c_events_no_onset(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.rename(columns={"onset": "time"})), "onset")


def c_events_no_word(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.drop(columns=["word"])), "word")


def c_events_header_only(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.iloc[:0]), "run-1_events.tsv")


def c_events_zero_bytes(w, tmp):
    return _data_case(w, tmp, lambda ds: _events(ds).write_bytes(b""), "run-1_events.tsv")


def c_events_text_onsets(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(onset="soon")), "run-1_events.tsv")


def c_events_all_na_words(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(word="n/a")), "run-1_events.tsv")


def c_truncated_nifti(w, tmp):
    def damage(ds):
        b = _bold(ds)
        b.write_bytes(b.read_bytes()[: b.stat().st_size // 2])
    return _data_case(w, tmp, damage, "run-1_bold.nii.gz")


def c_nifti_garbage(w, tmp):
    return _data_case(w, tmp, lambda ds: _bold(ds).write_bytes(b"this is not an image\n" * 10), "run-1_bold.nii.gz")


def c_bold_all_nan(w, tmp):
    return _data_case(w, tmp, lambda ds: _rewrite_bold(ds, lambda a: np.full_like(a, np.nan)), "sub-01")


def c_bold_constant(w, tmp):
    return _data_case(w, tmp, lambda ds: _rewrite_bold(ds, lambda a: np.full_like(a, 100.0)), "sub-01")


def c_bold_3d(w, tmp):
    return _data_case(w, tmp, lambda ds: _rewrite_bold(ds, lambda a: a[..., 0]), ("run-1_bold", "volume"))


def c_no_repetition_time(w, tmp):
    def damage(ds):
        for f in (ds / "sub-01" / "func").glob("*_bold.json"):
            f.write_text(json.dumps({"TaskName": "story"}))
    return _data_case(w, tmp, damage, "RepetitionTime")


def c_bad_repetition_time(w, tmp):
    return _data_case(w, tmp, lambda ds: (ds / f"{STEM}_bold.json").write_text('{"RepetitionTime": "two"}'),
                      "RepetitionTime")


def c_sidecar_not_json(w, tmp):
    return _data_case(w, tmp, lambda ds: (ds / f"{STEM}_bold.json").write_text("{RepetitionTime: 2"),
                      "run-1_bold.json")


def c_runs_different_tr(w, tmp):
    return _data_case(w, tmp, lambda ds: (ds / f"{STEM}_bold.json").write_text('{"RepetitionTime": 1.5}'),
                      "RepetitionTime")


def c_mask_all_zeros(w, tmp):
    import nibabel as nib

    shape = nib.load(w.mask).shape
    mask = _write_mask(tmp, np.zeros(shape, np.uint8), w)
    cfg = base_config(w)
    cfg["data"]["source"]["mask"] = str(mask)
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.tried = "mask", True
    return case


def c_mask_wrong_shape(w, tmp):
    mask = _write_mask(tmp, np.ones((4, 4, 3, 2), np.uint8), w)  # 4-D: not a mask
    cfg = base_config(w)
    cfg["data"]["source"]["mask"] = str(mask)
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.tried = "mask", True
    return case


def c_mask_not_nifti(w, tmp):
    (tmp / "mask.nii.gz").write_text("no image here\n")
    case = participant(w, tmp, w.root, "--mask", tmp / "mask.nii.gz")
    case.culprit, case.tried = "mask.nii.gz", True
    return case


CASES = collect(globals())


@pytest.fixture(scope="module")
def ran(damaged_world, tmp_path_factory) -> dict[str, Ran]:
    return run_cases(CASES, damaged_world, tmp_path_factory)


@pytest.mark.parametrize("name", sorted(CASES))
def test_damaged_data_is_refused(ran, name):
    check_case(ran[name])


def test_a_broken_participant_is_skipped_and_the_batch_goes_on(damaged_world, tmp_path):
    """sub-01's BOLD is truncated, sub-02 has one word past the end of a run: exit 1, sub-02 done with a warning."""
    ds = copy_dataset(damaged_world, tmp_path)
    b = _bold(ds)
    b.write_bytes(b.read_bytes()[: b.stat().st_size // 2])
    stem2 = STEM.replace("01", "02")
    _edit_events(ds, lambda t: pd.concat([t, t.iloc[[-1]].assign(onset=10_000.0)]), stem=stem2)
    case = participant(damaged_world, tmp_path, ds, label=None)
    res = cli(case, damaged_world)
    assert res.returncode == EXIT_PARTIAL, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and "sub-01" in lines[0] and "run-1_bold.nii.gz" in lines[0], res.stderr
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("brainalign: warning:")]
    assert any("sub-02_task-story_run-1_events.tsv" in ln and "dropped 1 of" in ln for ln in warn), res.stderr
    assert "1 done" in res.stdout and "1 failed" in res.stdout
    assert list((case.out / "sub-02").rglob("*_scores.tsv"))
    assert not (case.out / "sub-01").exists()
    failures = json.loads((case.out / "logs" / "failures.json").read_text())
    assert "01" in json.dumps(failures) and "02" not in failures
    assert not stray_temp_files(tmp_path)
