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
