"""BIDS-App flags of issue 15 (--word-column, --trial-type, --derivatives, --confounds, --high-gamma...) and their
one-line errors, from the CLI; numeric event codes in a word column are refused unless asked."""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from _damaged_cases import forked_cli as cli  # the CLI forked from a preloaded interpreter (same checks)
from _layouts import fast_config, layer_r, planted_flat, simulate, separated


@pytest.fixture(scope="module")
def coded(tmp_path_factory, layout_cache):
    """Raw BIDS whose words are in ``value``, with numeric trigger codes mixed in (trial_type 'trigger')."""
    root = tmp_path_factory.mktemp("coded") / "ds"
    truth = simulate(root, layout_cache, seed=6)
    rng = np.random.default_rng(6)
    for ev in sorted(root.glob("sub-01/func/*_events.tsv")):
        df = pd.read_csv(ev, sep="\t").rename(columns={"word": "value"})
        codes = pd.DataFrame({"onset": np.sort(rng.uniform(5, 100, 8)).round(3), "duration": 0.0,
                              "trial_type": "trigger", "value": rng.integers(1, 40, 8).astype(str)})
        pd.concat([df, codes]).sort_values("onset").to_csv(ev, sep="\t", index=False)
    return root, truth, layout_cache


def test_numeric_codes_are_refused_unless_the_word_events_are_chosen(coded, tmp_path):
    root, truth, cache = coded
    cfg = fast_config(tmp_path / "c.yaml", extra={"data": {"source": {"mask": str(root / truth["mask"])}}})
    runs = {"default": [root, tmp_path / "a", "participant", "--config", cfg],
            "value": [root, tmp_path / "b", "participant", "--config", cfg, "--word-column", "value"],
            "words": [root, tmp_path / "c", "participant", "--config", cfg, "--word-column", "value",
                      "--trial-type", "word", "--quiet"]}
    with ThreadPoolExecutor(3) as pool:
        res = dict(zip(runs, pool.map(lambda k: cli(runs[k], cache, tmp_path / k), runs)))
    for key, text in (("default", "--word-column"), ("value", "--trial-type")):
        r = res[key]
        assert r.returncode == 2 and text in r.stderr and "Traceback" not in r.stderr, (key, r.stderr)
    assert "are numbers" in res["value"].stderr and "allow_numeric_words" in res["value"].stderr
    assert res["words"].returncode == 0, res["words"].stderr
    t = pd.read_csv(tmp_path / "c" / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.tsv", sep="\t",
                    na_values="n/a")
    r1 = layer_r(t)
    planted, noise = planted_flat(root, truth)
    assert separated(r1, planted, noise)


def test_layout_flags_refuse_with_one_line_naming_the_flag(coded, tmp_path):
    root, truth, cache = coded
    cfg = fast_config(tmp_path / "c.yaml", extra={"data": {"source": {"mask": str(root / truth["mask"])}}})
    common = ["--config", cfg, "--word-column", "value", "--trial-type", "word"]
    cases = {"--derivatives": [root, tmp_path / "a", "participant", *common, "--derivatives", tmp_path / "none"],
             "--high-gamma": [root, tmp_path / "b", "participant", *common, "--high-gamma"],
             "data.preprocess.confounds": [root, tmp_path / "c", "participant", *common, "--confounds", "compcor"],
             "--space": [root, tmp_path / "d", "participant", *common, "--space", "MNI152NLin2009cAsym"]}
    with ThreadPoolExecutor(4) as pool:
        res = dict(zip(cases, pool.map(lambda k: cli(cases[k], cache, tmp_path / k.strip("-")), cases)))
    for flag, r in res.items():
        assert r.returncode == 2, (flag, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("brainalign: error") or "failed:" in ln]
        assert lines and flag in lines[0] and "Traceback" not in r.stderr, (flag, r.stderr)


def test_flags_fill_the_configuration_fields(coded, tmp_path):
    from brainalign.cli import bids_parser
    from brainalign.pipeline.bids_app import bids_config

    root, _, _ = coded
    args = bids_parser().parse_args([str(root), str(tmp_path / "o"), "participant", "--session", "2",
                                     "--derivatives", "none", "--space", "T1w", "--confounds", "scrubbing",
                                     "--word-column", "value", "--trial-type", "word", "noun", "--high-gamma",
                                     "--pool-sessions"])
    assert isinstance(args, argparse.Namespace)
    cfg = bids_config(args)
    src = cfg.data.source
    assert (src.session, src.derivatives, src.space, src.word_column) == ("2", "none", "T1w", "value")
    assert (src.trial_type, src.high_gamma, src.pool_sessions) == (["word", "noun"], True, True)
    assert cfg.data.preprocess.confounds == "scrubbing"


def test_high_gamma_reaches_the_ieeg_loader(tmp_path, layout_cache):
    from brainalign.pipeline.config import validate_config
    from brainalign.pipeline.simulate import simulate_bids
    from brainalign.pipeline.sources import load_participant
    from brainalign.pipeline.specs import specs_from_config

    root = tmp_path / "ieeg"
    simulate_bids(root, "ieeg", n_subjects=1, n_runs=1, run_seconds=30.0, sfreq=500.0, n_channels=4, layers=(1,),
                  targets_per_layer=1, n_words=40, seed=2, cache_dir=str(layout_cache))
    for hg in (False, True):
        src = {"kind": "bids", "root": str(root), "datatype": "ieeg", "high_gamma": hg}
        loaded = load_participant(specs_from_config(validate_config({"data": {"source": src}})).load, "01", "story")
        rec = loaded.recording
        assert rec.attrs["high_gamma"] == str(hg)
        # the envelope is resampled to 100 Hz (the loader's high-gamma default); the raw data keep 500 Hz
        assert rec.attrs["sfreq"] == (100.0 if hg else 500.0)
        assert rec.attrs["highpass"] == (70.0 if hg else rec.attrs["highpass"])


def test_a_few_numerals_are_words_many_are_codes():
    from brainalign.errors import InputError
    from brainalign.pipeline.source_bids import NUMERIC_SHARE, check_words

    n = 200
    few = int(NUMERIC_SHARE * n) - 1
    words = [str(i) if i < few else f"w{i}" for i in range(n)]
    stim = pd.DataFrame({"word": words, "onset": np.arange(n, dtype=float), "run": "1"})

    class Rec:
        attrs = {"subject": "01"}

    check_words(stim, "word", Rec())  # 'in 1984 ...': numerals below the share are words
    stim.loc[: few + 2, "word"] = [str(i) for i in range(few + 3)]
    with pytest.raises(InputError, match="are numbers .*--trial-type"):
        check_words(stim, "value", Rec())
