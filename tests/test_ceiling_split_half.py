"""``statistics.ceiling``: split-half across repeated runs of one participant, auto, and refusals.

Repeated presentations are built from real simulated BIDS files: two simulated
participants heard the same single-run story with the same planted code and fresh
noise, so run 1 of one and run 1 of the other are two repeats of one stimulus for
one participant. Split-half across runs that are *different* parts of a story (the
simulator's and the demo's layout) is not a ceiling and must not be given.
"""
from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.data import make_recording
from brainalign.errors import InputError
from brainalign.pipeline import ceiling
from brainalign.pipeline.config import validate_config
from brainalign.pipeline.plan import run_study
from brainalign.pipeline.schema import StatisticsConfig
from brainalign.pipeline.simulate import simulate_bids

SNR = 1.5


def _cfg(root: Path, mask: Path, cache: Path, ceiling_kind: str | None) -> dict:
    stats = {"n_bootstrap": 20} | ({"ceiling": ceiling_kind} if ceiling_kind else {})
    return {"data": {"source": {"kind": "bids", "root": str(root), "mask": str(mask)}},
            "models": [{"label": "MiniLM", "path": "packaged:minilm", "layers": [1, 3], "context_words": 20}],
            "alignment": {"trim": [3, 3]},
            "scoring": {"methods": ["encoding"], "inner_cv": 3, "alphas": [10.0, 1000.0, 100000.0]},
            "statistics": stats, "outputs": {"report": True}, "execution": {"cache_dir": str(cache)}}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def repeats(tmp_path_factory, cache):
    """One participant with two runs of the same stimulus (same events, same signal, independent noise)."""
    tmp = tmp_path_factory.mktemp("repeats")
    sim = tmp / "sim"
    truth = simulate_bids(sim, "fmri", n_subjects=2, n_runs=1, n_volumes=120, grid=(7, 7, 5), layers=(1, 3),
                          targets_per_layer=10, snr=SNR, n_words=160, seed=21, cache_dir=str(cache))
    root = tmp / "bids"
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    for run, sub in ((1, "01"), (2, "02")):
        for suffix in ("bold.nii.gz", "bold.json", "events.tsv"):
            shutil.copy(sim / f"sub-{sub}" / "func" / f"sub-{sub}_task-story_run-1_{suffix}",
                        func / f"sub-01_task-story_run-{run}_{suffix}")
    for name in ("dataset_description.json", "README"):
        shutil.copy(sim / name, root / name)
    (root / "participants.tsv").write_text("participant_id\nsub-01\n")
    return root, sim / truth["mask"], truth


@pytest.fixture(scope="module")
def parts(tmp_path_factory, cache):
    """Two participants whose two runs are different halves of the story (no repeat)."""
    root = tmp_path_factory.mktemp("parts") / "bids"
    truth = simulate_bids(root, "fmri", n_subjects=2, n_runs=2, n_volumes=60, grid=(7, 7, 5), layers=(1, 3),
                          targets_per_layer=10, snr=SNR, n_words=160, seed=22, cache_dir=str(cache))
    return root, root / truth["mask"], truth


def _study(data, cache, out: Path, kind: str | None, events=None):
    root, mask, _ = data
    summary = run_study(validate_config(_cfg(root, mask, cache, kind)), out_dir=out, progress=False,
                        on_event=None if events is None else events.append)
    assert summary.exit_code == 0, summary.failed
    scores = pd.read_csv(out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.tsv", sep="\t",
                         dtype={"target": str})
    side = json.loads((out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.json").read_text())
    return scores, side, (out / "sub-01.html").read_text()


@pytest.mark.parametrize("kind", ["split_half", None])  # None: the default, auto
def test_repeated_runs_give_the_single_run_ceiling(repeats, cache, tmp_path, kind):
    scores, side, html = _study(repeats, cache, tmp_path / "out", kind)
    truth = repeats[2]
    assert side["Statistics"]["ceiling"] == "split_half"
    assert side["Statistics"]["ceiling_requested"] == (kind or "auto")
    assert "Spearman-Brown" in side["Statistics"]["ceiling_estimate"]
    ceil = scores[scores.metric == "ceiling"].set_index("target")["value"]
    planted = sorted({i for v in truth["planted"].values() for i in v})
    # data = snr * signal + noise, signal shared by the repeats: one run's reliability is snr^2 / (snr^2 + 1)
    expected = np.sqrt(SNR ** 2 / (SNR ** 2 + 1))
    got = ceil.iloc[planted].to_numpy()
    assert abs(np.nanmedian(got) - expected) < 0.1
    noise = ceil.iloc[truth["noise"]].to_numpy()
    assert np.nanmedian(np.nan_to_num(noise)) < 0.5 * expected
    enc = scores[(scores.method == "encoding") & scores.fold.isna()]
    r = enc[enc.metric == "r"].groupby("target")["value"].max().reindex(ceil.index)  # targets in mask order
    assert np.nanmedian((r / ceil).iloc[planted]) < 1.1  # no model of one run beats the ceiling
    assert len(enc[enc.metric == "r_norm"]) == len(enc[enc.metric == "r"])
    assert "Ceiling-normalised profile" in html and "split-half across 2 repeated runs" in html


def test_runs_of_different_story_parts_get_no_ceiling(parts, cache, tmp_path):
    events = []
    scores, side, html = _study(parts, cache, tmp_path / "auto", None, events)
    order = [(e["kind"], e.get("subject")) for e in events if e["kind"] in ("task", "written")]
    assert order.index(("written", "01")) < order.index(("task", "02"))  # no other participant is waited for
    assert side["Statistics"]["ceiling"] == "none"
    assert "different words" in side["Statistics"]["ceiling_reason"]
    assert not (scores.metric == "ceiling").any() and not (scores.metric == "r_norm").any()
    assert "No noise ceiling in this result" in html and "different words" in html
    assert not any("ceiling" in w for w in side["Warnings"])  # auto: a recorded reason, not a warning

    scores, side, _ = _study(parts, cache, tmp_path / "asked", "split_half")
    assert side["Statistics"]["ceiling"] == "none" and not (scores.metric == "ceiling").any()
    assert any("split_half not computed" in w and "different words" in w for w in side["Warnings"])


def test_loo_isc_asked_with_two_participants_is_refused(parts, cache, tmp_path):
    root, mask, _ = parts
    with pytest.raises(InputError, match="loo_isc needs at least 3"):
        run_study(validate_config(_cfg(root, mask, cache, "loo_isc")), out_dir=tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "sub-01").exists()


# ------------------------------------------------------------ the estimator itself
def _recording(data, runs, times, tr=2.0):
    return make_recording(data, times, runs, modality="fmri", tr=tr)


def _stim(words_by_run: dict) -> pd.DataFrame:
    rows = [(w, 1.0 + i, 0.3, run) for run, words in words_by_run.items() for i, w in enumerate(words)]
    return pd.DataFrame(rows, columns=["word", "onset", "duration", "run"])


def test_three_repeats_with_unequal_halves_and_dropped_volumes():
    rng = np.random.default_rng(5)
    n, noise = 3000, np.array([0.5, 1.0, 2.0])
    signal = rng.standard_normal((n, 3))
    runs = [signal + noise * rng.standard_normal((n, 3)) for _ in range(3)]
    runs[1] = runs[1][4:]  # the second run lost its first 4 volumes (non-steady state)
    times = np.concatenate([np.arange(n) * 2.0, np.arange(4, n) * 2.0, np.arange(n) * 2.0])
    labels = np.repeat(["1", "2", "3"], [n, n - 4, n])
    cd = ceiling.ceiling_data(_recording(np.concatenate(runs), labels, times), _stim({r: ["a", "b"] for r in "123"}))
    got, reason = ceiling.split_half(cd)
    assert reason == ""
    np.testing.assert_allclose(got, 1 / np.sqrt(1 + noise ** 2), atol=0.03)  # corr(signal, one run)


def test_reliability_inverts_the_correlation_of_unequal_means():
    rho1 = np.array([0.1, 0.4, 0.8])
    for a, b in ((1, 1), (2, 1), (3, 2), (2, 2)):
        lam = (1 - rho1) / rho1
        c = 1 / np.sqrt((1 + lam / a) * (1 + lam / b))
        np.testing.assert_allclose(ceiling._one_run_reliability(c, a, b), rho1)
    k = 2  # equal halves: the textbook Spearman-Brown formula
    c = np.array([0.3, 0.6])
    np.testing.assert_allclose(ceiling._one_run_reliability(c, k, k), c / (k - (k - 1) * c))


@pytest.mark.parametrize("words, onsets, match", [
    ({"1": ["a", "b"], "2": ["c", "d"]}, None, "different words"),
    ({"1": ["a", "b"], "2": ["a", "b"]}, 5.0, "onsets up to 5 s apart"),
    ({"1": ["a", "b"]}, None, "only 1 run"),
])
def test_runs_that_are_not_repeats_are_named(words, onsets, match):
    stim = _stim(words)
    if onsets:
        stim.loc[stim.run == "2", "onset"] += onsets
    labels = np.repeat(list(words), 20)
    times = np.concatenate([np.arange(20) * 2.0] * len(words))
    cd = ceiling.ceiling_data(_recording(np.ones((labels.size, 2)), labels, times), stim)
    values, reason = ceiling.split_half(cd)
    assert values is None and match in reason


def test_auto_prefers_the_intersubject_ceiling_only_where_it_applies():
    rng = np.random.default_rng(2)
    shared = rng.standard_normal((40, 2))
    times = np.arange(40) * 2.0
    make = lambda words, y: ceiling.ceiling_data(_recording(y, np.repeat("1", 40), times), _stim({"1": words}))
    same = {s: make(["a", "b"], shared + rng.standard_normal((40, 2))) for s in "abc"}
    got = ceiling.study_ceilings("auto", same, list("abc"), ["a"])
    assert got["a"].kind == "loo_isc" and got["a"].values.shape == (2,)
    other = dict(same, c=make(["x", "y"], shared))
    got = ceiling.study_ceilings("auto", other, list("abc"), ["a"])
    assert got["a"].kind == "none" and "different words" in got["a"].reason and got["a"].warning is None
    with pytest.raises(InputError, match="loo_isc cannot apply: participants were presented different words"):
        ceiling.study_ceilings("loo_isc", other, list("abc"), ["a"])


def test_the_schema_offers_exactly_the_ceilings_implemented():
    assert set(typing.get_args(StatisticsConfig.model_fields["ceiling"].annotation)) == set(ceiling.CHOICES)
    assert StatisticsConfig().ceiling == "auto"
