"""brainalign.geometry: representational geometry kernels (arrays in, arrays out).

Comparisons of two representations of the same items (rows), each returning a
float for two (items, features) arrays and a matrix for stacks. numpy input is
computed in float64; torch tensors (CPU or CUDA) are computed in torch on their
device (float64 for float64 input) by :func:`mutual_knn`, :func:`cycle_knn`,
:func:`cka`, :func:`shape_distance` and :func:`intrinsic_dimension`, a stack then
giving a tensor (the other kernels take tensors through numpy):

- :func:`mutual_knn`, :func:`cycle_knn`, :func:`cknna` — nearest-neighbour
  alignment (Huh et al. 2024), exact neighbours from a blocked similarity GEMM.
- :func:`cka` — centered kernel alignment on patterns, linear or RBF, biased or
  debiased (Kornblith et al. 2019; Song et al. 2012).
- :func:`shape_distance`, :func:`shape_distance_cv` — generalized shape metrics
  with partial whitening (Williams et al. 2021).
- :func:`stochastic_shape_distance` — Gaussian (2-Wasserstein/Bures) stochastic
  shape distance of noisy responses (Duong et al. 2023), and :func:`energy_shape_distance`,
  its energy-distance form.

And of one representation:

- :func:`intrinsic_dimension`, :func:`intrinsic_dimension_ci` — TwoNN (Facco et
  al. 2017) and GRIDE (Denti et al. 2022).

This package imports neither io, pipeline, encoding nor rsa. Definitions and
citations: docs/geometry.md.
"""
from .cka import KERNELS, cka, center_gram
from .dimension import METHODS as ID_METHODS
from .dimension import intrinsic_dimension, intrinsic_dimension_ci, neighbour_distances
from .knn import cknna, cycle_knn, knn_indices, mutual_knn
from .shape import KINDS, shape_distance, shape_distance_cv, whitening
from .stochastic import energy_shape_distance, stochastic_shape_distance

__all__ = [
    "mutual_knn",
    "cycle_knn",
    "cknna",
    "knn_indices",
    "cka",
    "center_gram",
    "shape_distance",
    "shape_distance_cv",
    "stochastic_shape_distance",
    "energy_shape_distance",
    "whitening",
    "intrinsic_dimension",
    "intrinsic_dimension_ci",
    "neighbour_distances",
    "KERNELS",
    "KINDS",
    "ID_METHODS",
]
