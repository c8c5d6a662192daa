"""The option lists of the configuration: the kernels' names, stated once for the schema.

The schema (:mod:`.config`) builds its choices from these tuples. Each one is the
kernel's own constant, spelled here so that validating a configuration (every CLI
call, the service) does not import torch, scikit-learn and the kernels (5 s against
0.4 s). ``tests/test_config_fields.py`` asserts that every tuple equals the
kernel's constant it names, so a name the configuration accepts is a name the
kernel accepts, and a method added to a kernel fails that test until it is
added here.
"""
from __future__ import annotations

#: ``alignment.method``: "auto" (per modality) + brainalign.align.design.METHODS.
ALIGNMENT = ("auto", "lanczos", "hrf", "word", "epochs")
#: ``scoring.cv.kind``: brainalign.encoding.folds.FOLD_KINDS.
CV_KINDS = ("contiguous", "leave_one_run_out", "group")
#: ``scoring.rsa.metric``: brainalign.rsa.METRICS less those that need more than the
#: patterns (mahalanobis needs a noise precision, crossnobis run labels per
#: observation; the pipeline's block-mean items give neither).
RSA_METRICS = ("correlation", "euclidean", "sqeuclidean", "cosine")
#: Metrics of brainalign.rsa.METRICS the pipeline leaves out (see above).
RSA_METRICS_EXCLUDED = ("mahalanobis", "crossnobis")
#: ``scoring.rsa.compare``: brainalign.rsa.METHODS.
RSA_COMPARE = ("spearman", "pearson", "cosine", "kendall_tau_a", "cka")
#: ``scoring.rsa.transform``: "none" + brainalign.rsa.layers.TRANSFORMS.
RSA_TRANSFORMS = ("none", "gt", "geodesic")
#: ``scoring.layer_selection``: "argmax" + brainalign.encoding.layer_id.METHODS + "rsa".
LAYER_SELECTION = ("argmax", "unique", "unique_adjacent", "unique_pairwise", "single", "rsa")
#: ``scoring.methods`` (the pipeline's scorers).
SCORING_METHODS = ("encoding", "rsa", "geometry")
#: ``scoring.geometry.metrics``: brainalign.pipeline.geometry_scores.METRICS (the geometry kernels
#: between brain and layer patterns, and "id", each layer's intrinsic dimension).
GEOMETRY_METRICS = ("mutual_knn", "cycle_knn", "cknna", "cka", "shape", "shape_cv", "id")
#: ``scoring.geometry.cka_kernel``, ``shape_kind``, ``id_method``: brainalign.geometry.KERNELS / KINDS / ID_METHODS.
GEOMETRY_CKA_KERNELS = ("linear", "rbf")
GEOMETRY_SHAPE_KINDS = ("angular", "euclidean")
GEOMETRY_ID_METHODS = ("twonn", "gride")
#: ``scoring.rsa.geodesic_method``, ``zero_edges``: brainalign.rsa.topology.GEODESIC_METHODS / ZERO_EDGES.
RSA_GEODESIC_METHODS = ("twostep", "p_shortest", "p_nearest", "k_nearest")
RSA_ZERO_EDGES = ("drop", "keep")
#: ``scoring.baseline_penalty`` (the pipeline's two baseline fits).
BASELINE_PENALTIES = ("banded", "shared")
#: ``data.preprocess.confounds`` (--confounds): "auto", nilearn's load_confounds_strategy names, "none".
CONFOUND_STRATEGIES = ("auto", "simple", "compcor", "scrubbing", "none")
#: ``models.context`` and ``models.pooling``: brainalign.encoders.hf.CONTEXTS / POOLINGS.
MODEL_CONTEXTS = ("window", "run", "sentence")
MODEL_POOLINGS = ("last", "mean")
