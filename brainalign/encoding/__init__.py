"""brainalign.encoding: ridge encoding models and their statistics.

Kernels take arrays and return arrays. Public names:

- :class:`RidgeCV`: one cross-validated alpha per target, batched over targets
  within a memory budget, primal or dual solved automatically, numpy or torch.
- :func:`cross_validated_scores` -> :class:`NestedCVResult`: nested CV with
  per-fold r averaged over folds.
- :class:`BandedRidgeCV` and :func:`variance_partitioning`: several feature
  spaces with their own penalties; unique and shared variance per space.
- :func:`make_folds` and :func:`folds_to_splits`: the one fold factory.
- :func:`pearson_r`, :func:`r2_score`, :func:`fdr_bh`, :func:`permutation_test`.
"""
from .banded import BandedRidgeCV
from .folds import FOLD_KINDS, folds_to_splits, make_folds
from .nested import NestedCVResult, cross_validated_scores
from .partition import VariancePartition, variance_partitioning
from .ridge import DEFAULT_ALPHAS, RidgeCV
from .stats import ConstantTargetWarning, PermutationResult, fdr_bh, pearson_r, permutation_test, r2_score

__all__ = [
    "DEFAULT_ALPHAS",
    "FOLD_KINDS",
    "BandedRidgeCV",
    "ConstantTargetWarning",
    "NestedCVResult",
    "PermutationResult",
    "RidgeCV",
    "VariancePartition",
    "cross_validated_scores",
    "fdr_bh",
    "folds_to_splits",
    "make_folds",
    "pearson_r",
    "permutation_test",
    "r2_score",
    "variance_partitioning",
]
