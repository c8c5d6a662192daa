"""brainalign.rsa: representational similarity and topological RSA (kernels).

Arrays in, arrays out:

- :func:`rdm` — RDMs from patterns (correlation, euclidean, sqeuclidean, cosine,
  mahalanobis, crossnobis), GEMM-based, batched, numpy or torch.
- :func:`gt_transform`, :func:`geodesic` — geo-topological transform and graph
  geodesics (Lin & Kriegeskorte), per RDM; :func:`select_gt` chooses the band by
  leave-one-participant-out identification, as the authors do.
- :func:`compare` — spearman, pearson, cosine, kendall_tau_a, cka.
- :func:`bootstrap` (alias :func:`bootstrap_compare`), :func:`noise_ceiling`,
  :func:`permutation_test` — vectorised, seeded inference.
- :func:`identify_layer` — which layer matches a brain region best, under plain RSA
  and a grid of GT settings, with bootstrap confidence.
"""
from .compare import METHODS, compare
from .inference import (
    BootstrapResult,
    NoiseCeiling,
    PermutationResult,
    bootstrap,
    bootstrap_compare,
    noise_ceiling,
    permutation_test,
)
from .layers import LayerIdentification, LayerScores, gt_grid, identify_layer
from .rdm import METRICS, rdm
from .gt_select import GTSelection, select_gt
from .topology import geodesic, gt_transform

__all__ = [
    "rdm",
    "gt_transform",
    "geodesic",
    "select_gt",
    "GTSelection",
    "compare",
    "bootstrap",
    "bootstrap_compare",
    "noise_ceiling",
    "permutation_test",
    "identify_layer",
    "gt_grid",
    "BootstrapResult",
    "NoiseCeiling",
    "PermutationResult",
    "LayerScores",
    "LayerIdentification",
    "METHODS",
    "METRICS",
]
