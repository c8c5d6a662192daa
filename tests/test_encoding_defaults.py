"""One alpha grid with one stated scale across the encoding kernels (issue 16)."""
import inspect

import numpy as np
import pytest

from brainalign import encoding
from brainalign.encoding import DEFAULT_ALPHAS, layer_id


@pytest.mark.parametrize(
    "func",
    [
        encoding.RidgeCV.__init__,
        encoding.BandedRidgeCV.__init__,
        encoding.cross_validated_scores,
        encoding.variance_partitioning,
        layer_id.kernel_ridge_cv_predict,
        layer_id.single_layer_scores,
        layer_id.unique_variance_layers,
        layer_id.identify_layer_by_encoding,
    ],
    ids=lambda f: f.__qualname__,
)
def test_every_kernel_defaults_to_the_one_grid(func):
    """Regression: layer_id had its own grid (1e-3..1e4), on a scale p times RidgeCV's."""
    assert inspect.signature(func).parameters["alphas"].default is DEFAULT_ALPHAS


def test_the_grid_is_decades_from_1e_2_to_1e10():
    np.testing.assert_allclose(DEFAULT_ALPHAS, np.logspace(-2, 10, 13), rtol=1e-15)
    assert not hasattr(layer_id, "DEFAULT_ALPHAS") or layer_id.DEFAULT_ALPHAS is DEFAULT_ALPHAS
