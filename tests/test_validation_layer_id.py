"""Layer identification: the kernel against scikit-learn, its behaviour, and the study's statistics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from brainalign.encoding.layer_id import (
    contiguous_folds,
    group_folds,
    identify_layer_by_encoding,
    kernel_ridge_cv_predict,
    layer_kernels,
    single_layer_scores,
    unique_variance_layers,
)
from brainalign.errors import InputError, ShapeMismatchError
from brainalign.validation.stats import markdown_table, wilson_interval


def test_kernel_ridge_matches_sklearn_ridge_with_intercept():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 25)) + 3.0
    Y = X @ rng.normal(size=(25, 3)) + rng.normal(size=(60, 3)) + 5.0
    K = layer_kernels([X])[0]
    folds = contiguous_folds(60, 4)
    for alpha in (0.1, 10.0, 1000.0):
        pred, chosen = kernel_ridge_cv_predict(K, Y, folds, alphas=np.array([alpha]))
        assert np.all(chosen == alpha)
        for te in folds:
            tr = np.setdiff1d(np.arange(60), te)
            ref = Ridge(alpha=alpha).fit(X[tr], Y[tr]).predict(X[te])  # same alpha, same penalty
            np.testing.assert_allclose(pred[te], ref, rtol=1e-7, atol=1e-8)


def test_layer_scores_at_alpha_a_equal_ridgecv_at_alpha_a():
    """Regression (issue 16): the kernels were X X^T / p, so an alpha was p times RidgeCV's."""
    from brainalign.encoding import RidgeCV, pearson_r

    rng = np.random.default_rng(3)
    layers = [rng.normal(size=(90, p)) for p in (12, 40)]
    Y = layers[1][:, :5] @ rng.normal(size=(5, 3)) + rng.normal(size=(90, 3))
    folds = contiguous_folds(90, 3)
    alpha = 50.0
    def ridgecv_fold_predictions(X):
        pred = np.zeros_like(Y)
        for te in folds:
            tr = np.setdiff1d(np.arange(90), te)
            pred[te] = RidgeCV(alphas=[alpha], cv=3, backend="numpy", dtype="float64").fit(X[tr], Y[tr]).predict(X[te])
        return pred

    def fold_mean_r(pred):
        return np.mean([pearson_r(Y[te], pred[te]) for te in folds], axis=0)

    single = single_layer_scores(layer_kernels(layers), Y, folds, alphas=np.array([alpha]))["single_r"]
    for l, X in enumerate(layers):
        pred, _ = kernel_ridge_cv_predict(layer_kernels([X])[0], Y, folds, alphas=np.array([alpha]))
        ref = ridgecv_fold_predictions(X)
        np.testing.assert_allclose(pred, ref, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(single[l], fold_mean_r(ref), atol=1e-9)
    # a model over two layers is ridge on the concatenated designs, at the same alpha
    joint = unique_variance_layers(layer_kernels(layers), Y, folds, alphas=np.array([alpha]))["joint_r"]
    np.testing.assert_allclose(joint, fold_mean_r(ridgecv_fold_predictions(np.hstack(layers))), atol=1e-9)


def test_kernel_r_matches_encoding_module():
    from brainalign.encoding import cross_validated_scores

    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 30))
    Y = X @ rng.normal(size=(30, 4)) + 3 * rng.normal(size=(120, 4))
    folds = contiguous_folds(120, 4)
    alphas = np.array([100.0])  # the kernel is X X^T: the same alpha as the primal ridge
    ours = unique_variance_layers(layer_kernels([X, X[:, ::-1]]), Y, folds, alphas=alphas)["single_r"][0]
    splits = [(np.setdiff1d(np.arange(120), te), te) for te in folds]
    ref = cross_validated_scores(X, Y, outer_cv=splits, alphas=[100.0], return_predictions=False).r
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_alpha_selection_prefers_strong_penalty_for_noise():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 40))
    signal = X @ rng.normal(size=(40, 1))
    Y = np.hstack([signal + 0.1 * rng.normal(size=(80, 1)), rng.normal(size=(80, 1))])
    _, chosen = kernel_ridge_cv_predict(layer_kernels([X])[0], Y, contiguous_folds(80, 4),
                                        alphas=np.logspace(-3, 4, 8))
    assert np.median(chosen[:, 0]) < np.median(chosen[:, 1])


def _nested_layers(rng, n=240, p=30, n_layers=5):
    """A residual-stream-like stack: each layer = previous layer mixed + fresh features."""
    base = rng.normal(size=(n, p))
    layers = [base]
    for _ in range(n_layers - 1):
        prev = layers[-1]
        layers.append(prev @ (np.eye(p) + 0.3 * rng.normal(size=(p, p)) / np.sqrt(p)) + 0.8 * rng.normal(size=(n, p)))
    return [(L - L.mean(0)) / L.std(0) for L in layers]


@pytest.mark.parametrize("planted", [1, 3])
def test_unique_variance_finds_planted_layer(planted):
    rng = np.random.default_rng(planted)
    layers = _nested_layers(rng)
    Y = layers[planted] @ rng.normal(size=(layers[0].shape[1], 8)) / np.sqrt(30)
    Y = Y + 0.5 * rng.normal(size=Y.shape)
    K = layer_kernels(layers)
    folds = contiguous_folds(Y.shape[0], 4)
    res = identify_layer_by_encoding(K, Y, folds, method="unique", groups=np.zeros(8, int))
    assert res["best"].tolist() == [planted]
    assert res["score"].shape == (5, 1) and res["unique"].shape == (5, 8)
    # the planted layer adds variance the others cannot give; a non-generating layer adds none
    uv = unique_variance_layers(K, Y, folds, criterion="r2")
    others = np.delete(uv["unique"].mean(axis=1), planted)
    assert uv["unique"][planted].mean() > 0.03 and np.all(others < 0.01)
    np.testing.assert_array_equal(uv["unique"], uv["unique_r2"])
    assert uv["single_r"].shape == (5, 8) and np.all(uv["single_r"] <= 1)
    for method in ("unique_adjacent", "unique_pairwise", "single"):
        assert identify_layer_by_encoding(K, Y, folds, method=method, groups=np.zeros(8, int))["best"].tolist() == [planted]
    single = single_layer_scores(K, Y, folds)
    np.testing.assert_allclose(single["single_r"], uv["single_r"])


def test_identify_layer_checks_input():
    rng = np.random.default_rng(3)
    layers = [rng.normal(size=(40, 5)) for _ in range(3)]
    K = layer_kernels(layers)
    Y = rng.normal(size=(40, 2))
    folds = contiguous_folds(40, 4)
    with pytest.raises(InputError, match="criterion"):
        identify_layer_by_encoding(K, Y, folds, method="unique", criterion="mse")
    with pytest.raises(InputError, match="method"):
        identify_layer_by_encoding(K, Y, folds, method="best")
    with pytest.raises(ShapeMismatchError):
        identify_layer_by_encoding(K, Y, folds, groups=[0, 0, 1])
    Yc = Y.copy()
    Yc[:, 1] = 2.0
    for method in ("single", "unique"):
        with pytest.raises(InputError, match="constant"):
            identify_layer_by_encoding(K, Yc, folds, method=method)
    with pytest.raises(ShapeMismatchError):
        layer_kernels([layers[0], layers[1][:30]])
    with pytest.raises(InputError):  # the fold factory's error (make_folds)
        contiguous_folds(3, 5)
    folds_g = group_folds(np.repeat(np.arange(6), 5), 3)
    assert [f.size for f in folds_g] == [10, 10, 10]
    assert np.array_equal(np.sort(np.concatenate(folds_g)), np.arange(30))


@pytest.mark.parametrize("k,n", [(0, 10), (7, 21), (20, 20), (33, 147)])
def test_wilson_interval_matches_scipy(k, n):
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    np.testing.assert_allclose(wilson_interval(k, n), (ref.low, ref.high), atol=1e-12)
    assert np.isnan(wilson_interval(0, 0)[0])


def test_markdown_table():
    md = markdown_table(pd.DataFrame({"a": ["x", "y"], "b": [0.12345, np.nan]}))
    assert md.splitlines()[0] == "| a | b |" and "0.123" in md and md.splitlines()[3] == "| y |  |"


@pytest.mark.slow
def test_layer_id_study_quick(tmp_path):
    from brainalign.validation.layer_id import main

    assert main(["--quick", "--output", str(tmp_path), "--seeds", "1"]) == 0
    acc = pd.read_csv(tmp_path / "accuracy.tsv", sep="\t")
    assert {"argmax_r", "single_r", "unique_r", "unique_pairwise_r", "rsa"} <= set(acc["method"])
    assert ((acc["accuracy"] >= 0) & (acc["accuracy"] <= 1)).all()


# ---------------------------------------------------------------- the cross-family study (issue 14)
def _trials(planted, chosen, **cols):
    return pd.DataFrame({"alignment": "fir4", "context": "gen", "method": "argmax_r", "family": "f1", "snr": 1.0,
                         "planted": planted, "chosen": chosen, **cols})


def test_signed_error_and_within_one_by_hand():
    from brainalign.validation.layer_id_tables import add_errors, summarise

    t = _trials([0, 1, 2, 3, 4], [0, 2, 1, 5, 4])  # errors 0, +1, -1, +2, 0
    s = summarise(t)
    assert s["n"] == 5 and s["exact"] == pytest.approx(2 / 5) and s["within_one"] == pytest.approx(4 / 5)
    assert s["signed_error"] == pytest.approx(2 / 5) and s["abs_error"] == pytest.approx(4 / 5)
    assert (s["n_deeper"], s["n_shallower"]) == (2, 1)
    err = np.array([0, 1, -1, 2, 0])
    half = stats.t.ppf(0.975, 4) * err.std(ddof=1) / np.sqrt(5)
    assert (s["signed_low"], s["signed_high"]) == pytest.approx((0.4 - half, 0.4 + half))
    assert (s["exact_low"], s["exact_high"]) == pytest.approx(wilson_interval(2, 5))
    e = add_errors(t)
    assert e["error"].tolist() == [0, 1, -1, 2, 0] and e["within_one"].tolist() == [1, 1, 1, 0, 1]
    assert e["correct"].tolist() == [1, 0, 0, 0, 1]


def test_accuracy_table_pools_families_and_snrs():
    from brainalign.validation.layer_id_tables import accuracy_table

    t = pd.concat([_trials([0, 1], [0, 1]), _trials([0, 1], [1, 3], family="f2"),
                   _trials([0, 1], [0, 0], family="f2", snr=0.5)], ignore_index=True)
    acc = accuracy_table(t).set_index(["family", "snr"])
    assert acc.loc[("f1", "1.0"), "exact"] == 1.0 and acc.loc[("f2", "1.0"), "exact"] == 0.0
    assert acc.loc[("f2", "all"), "n"] == 4 and acc.loc[("f2", "all"), "exact"] == pytest.approx(0.25)
    assert acc.loc[("all", "1.0"), "n"] == 4 and acc.loc[("all", "1.0"), "signed_error"] == pytest.approx(3 / 4)
    assert acc.loc[("all", "all"), "n"] == 6 and acc.loc[("all", "all"), "within_one"] == pytest.approx(5 / 6)


def test_coverage_table_by_hand():
    from brainalign.validation.layer_id_tables import coverage_markdown, coverage_table

    t = pd.concat([_trials([0, 1, 2, 3], [0, 1, 1, 3], in_set=[1, 1, 0, 1], set_size=[2, 3, 1, 2],
                           p_best_planted=[0.5, 0.4, 0.0, 0.9], snr=0.25),
                   _trials([0, 1], [0, 1], in_set=[0, 0], set_size=[1, 1], p_best_planted=[0.0, 0.0], snr=1.0),
                   _trials([0, 1], [1, 1], snr=0.25, method="rsa")], ignore_index=True)  # no set: left out
    cov = coverage_table(t, 0.25)
    assert set(cov["method"]) == {"argmax_r"}
    row = cov[cov["family"] == "f1"].iloc[0]
    assert row["n"] == 4 and row["coverage"] == pytest.approx(0.75) and row["mean_set_size"] == pytest.approx(2.0)
    assert row["p_best_planted"] == pytest.approx(0.45)
    assert (row["coverage_low"], row["coverage_high"]) == pytest.approx(wilson_interval(3, 4))
    assert "0.75 (2.0)" in coverage_markdown(cov)


def test_bootstrap_credible_set_covers_planted_layer():
    """The region-level 90 % set of the pipeline's block bootstrap holds the planted layer in most datasets."""
    from brainalign.encoding import make_folds
    from brainalign.validation.layer_id_analysis import bootstrap_choice, encoding_scores

    n, hits, sizes = 160, 0, []
    runs = np.repeat([1, 2], n // 2)
    folds = make_folds("contiguous", n, runs, 5)
    for seed in range(8):
        rng = np.random.default_rng(seed)
        base = rng.normal(size=(n, 8))
        layers = [base + s * rng.normal(size=(n, 8)) for s in (0.0, 0.7, 1.4)]  # nested, like a model's depth
        Y = layers[1] @ rng.normal(size=(8, 6)) / np.sqrt(8) + 1.5 * rng.normal(size=(n, 6))
        _, preds = encoding_scores(layers, None, Y, folds, np.logspace(-2, 4, 7))
        res = bootstrap_choice(preds, Y, folds, runs, np.zeros(6, int), [0], n_boot=200, seed=seed)
        assert res["in_set"].shape == (3, 1) and res["p_best"].sum() == pytest.approx(1.0)
        hits += int(res["in_set"][1, 0])
        sizes.append(int(res["in_set"].sum()))
    assert hits >= 7  # nominal 0.9: 8 of 8 expected, one miss allowed
    assert min(sizes) < 3  # not trivially every layer


def test_alignment_designs_shapes():
    from brainalign.data import make_recording, make_stimulus
    from brainalign.validation.layer_id_analysis import ALIGNMENTS, PCA_COMPONENTS, layer_design

    rng = np.random.default_rng(0)
    stim = make_stimulus(pd.DataFrame({"word": [f"w{i}" for i in range(80)], "onset": np.arange(80) * 1.1 + 4.0,
                                       "duration": 0.3, "run": 1}))
    rec = make_recording(np.zeros((60, 1)), np.arange(60) * 2.0, np.ones(60, int), modality="fmri", tr=2.0)
    feats = rng.normal(size=(80, 40))
    cols = {"fir4": 160, "hrf": 40, "hrf_fir4": 160, "hrf_deriv": 80, "fir4_pca": PCA_COMPONENTS * 4,
            "fir4_banded": 160}
    for al in ALIGNMENTS:
        X, bands = layer_design(feats, stim, rec, al)
        assert X.shape == (60, cols[al]) and np.isfinite(X).all()
        assert bands == ([40] * 4 if al == "fir4_banded" else None)
    d = layer_design(feats, stim, rec, "hrf_deriv")[0]
    assert abs(np.corrcoef(d[:, 0], d[:, 40])[0, 1]) < 0.9  # the derivative is another regressor


def test_context_roles():
    from brainalign.validation.layer_id_families import GRID, context_label, windows_of

    assert windows_of("gen", 15) == [15] and windows_of("32", 10) == [32]
    assert windows_of("grid", 10) == [20] and windows_of("grid", 15) == [10, 20] and windows_of("grid", 20) == [10]
    assert context_label(15, 15) == "gen" and context_label(32, 15) == "32" and 32 in GRID


def test_family_study_rejects_unknown_family(capsys):
    from brainalign.validation.layer_id import main

    assert main(["--families", "nope"]) == 2
    assert "--families 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_family_study_tiny_case(tmp_path):
    """The quick study's machinery on one family, one SNR, one seed, few words: well-formed tables."""
    from brainalign.validation import layer_id_families as F
    from brainalign.validation.layer_id_tables import ANALYSIS

    plan = (("fir4", "gen", True, False), ("hrf", "32", False, False))
    cfg = F.StudyConfig(families=("classic",), snrs=(1.0,), seeds=(0,), n_volumes=50, n_words=100,
                        targets_per_layer=3, plan=plan, banded=(), n_boot=50)
    F.run(tmp_path, cfg, cache_dir=str(tmp_path / "cache"))
    trials = pd.read_csv(tmp_path / "trials.tsv", sep="\t")
    acc = pd.read_csv(tmp_path / "accuracy.tsv", sep="\t")
    cov = pd.read_csv(tmp_path / "coverage.tsv", sep="\t")
    methods = {"argmax_r", "pbest", "set_shallowest", "rsa", "trsa_gt_0.2_0.8", "trsa_gt_0.05_0.5"}
    assert set(trials.query("context == 'gen'")["method"]) == methods
    assert set(trials.query("context == '32'")["method"]) == {"argmax_r", "pbest", "set_shallowest"}
    assert len(trials) == 7 * (len(methods) + 3)
    assert (trials["error"] == trials["chosen"] - trials["planted"]).all()
    assert trials["chosen"].between(0, 6).all() and set(trials["planted"]) == set(range(7))
    assert ((acc["exact"] >= 0) & (acc["exact"] <= acc["within_one"]) & (acc["within_one"] <= 1)).all()
    assert set(acc["family"]) == {"classic", "all"} and len(acc.drop_duplicates(ANALYSIS)) == len(methods) + 3
    assert set(cov["method"]) == {"argmax_r"} and cov["coverage"].between(0, 1).all()
    argmax = trials.query("method == 'argmax_r'")
    assert (argmax["in_set"] == [str(p) in s.split(",") for p, s in zip(argmax["planted"], argmax["credible_set"].astype(str))]).all()
    md = (tmp_path / "accuracy.md").read_text()
    assert "Per family at SNR 1.0" in md and "Credible-set coverage" in md


def test_markdown_with_an_analysis_at_one_snr_only():
    """Regression: an analysis run at the highest SNR only (the banded ridge) left a KeyError in the tables."""
    from brainalign.validation.layer_id_tables import accuracy_table, family_markdown, pooled_markdown

    t = pd.concat([_trials([0, 1], [0, 1], snr=0.25), _trials([0, 1], [0, 2]),
                   _trials([0, 1], [1, 1], alignment="fir4_banded")], ignore_index=True)
    acc = accuracy_table(t)
    md = pooled_markdown(acc)
    banded = [l for l in md.splitlines() if l.startswith("| fir4_banded")]
    assert len(banded) == 1 and "| 0.50 [" in banded[0] and "| 1.00 [" in md
    assert "fir4_banded" in family_markdown(acc, "1.0")
