"""The seam between the configuration and the kernels: small frozen specs.

:func:`specs_from_config` is the one place a validated
:class:`~brainalign.pipeline.config.PipelineConfig` is read. It returns a
:class:`StudySpecs` of frozen dataclasses holding plain values (str, int, float,
bool, tuples); the prepare step, the scorers, the planner and the outputs read
these, never the configuration. Option lists are the kernels' own
(:mod:`.choices`), so a spec always names something the kernel accepts.

=================  ===============================  ==========================================
spec               from                             read by
=================  ===============================  ==========================================
:class:`LoadSpec`  ``data.source``                  :mod:`.sources` (participants, loaders)
:class:`PreprocessSpec` ``data.preprocess``         :mod:`.preprocess`
:class:`BaselineSpec`   ``baseline``                :mod:`.prepare` (baseline design)
:class:`ModelSpec`      ``models[]``                :mod:`.encoder_factory`, the planner
:class:`AlignSpec`      ``alignment``               :mod:`.prepare` (designs, keep-mask)
:class:`CVSpec`         ``scoring.cv``, ``inner_cv`` :mod:`.prepare` (folds), the scorers
:class:`RSASpec`        ``scoring.rsa``             :mod:`.scoring`, :mod:`.selection`
:class:`ScoreSpec`      ``scoring``                 :mod:`.scoring`, :mod:`.selection`
:class:`GeometrySpec`   ``scoring.geometry``        :mod:`.geometry_scores`
:class:`StatsSpec`      ``statistics``              :func:`.api.finalize`, :mod:`.ceiling`, group
:class:`OutputSpec`     ``outputs``                 the planner, :mod:`.outputs`
:class:`ExecSpec`       ``execution``               the planner, :mod:`.executor`
=================  ===============================  ==========================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .windows import resolve_windows


def _tuple(v) -> Optional[tuple]:
    return None if v is None else tuple(v)


@dataclass(frozen=True)
class LoadSpec:
    """What to load: the data source (``data.source``).

    ``options`` are extra loader keywords as sorted ``(name, value)`` pairs (lists
    made tuples), so the spec is hashable; :meth:`loader_options` gives a dict.
    """

    kind: str
    task: Optional[str]
    participants: Optional[tuple[str, ...]]
    options: tuple = ()
    root: Optional[str] = None
    path: Optional[str] = None
    adapter: Optional[str] = None
    exclude: tuple[str, ...] = ()
    datatype: Optional[str] = None
    session: Optional[str] = None
    runs: Optional[tuple] = None
    space: Optional[str] = None
    mask: Optional[str] = None
    atlas: Optional[str] = None
    tr: Optional[float] = None
    word_column: Optional[str] = None
    derivatives: Optional[str] = None
    pool_sessions: bool = False
    trial_type: Optional[tuple[str, ...]] = None
    allow_numeric_words: bool = False
    high_gamma: bool = False
    bold: Optional[str] = None
    words: Optional[str] = None
    tier: Optional[str] = None

    def loader_options(self) -> dict[str, Any]:
        """The extra loader keywords as a dict (tuples back to lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.options}


@dataclass(frozen=True)
class PreprocessSpec:
    """Per-run cleaning (nilearn.signal.clean); ``high_pass``/``low_pass`` in Hz."""

    detrend: bool = False
    high_pass: Optional[float] = None
    low_pass: Optional[float] = None
    standardize: bool = True
    confounds: str = "auto"

    @property
    def active(self) -> bool:
        return bool(self.detrend or self.high_pass or self.low_pass or self.standardize or self.confounds != "none")


@dataclass(frozen=True)
class BaselineSpec:
    """Baseline regressors: table ``columns`` (None = all) and FIR ``delays`` (samples)."""

    label: str = "baseline"
    columns: Optional[tuple[str, ...]] = None
    delays: Optional[tuple[int, ...]] = None


@dataclass(frozen=True)
class ModelSpec:
    """One language model and how its activations are made."""

    label: str
    path: str
    layers: Any  # "all" or tuple of int
    context: str
    context_words: Any  # as configured: "auto", an int or a list of ints
    pooling: str
    batch_size: int
    revision: Optional[str]
    trust_remote_code: bool
    with_baseline: bool
    #: The analysis windows (words) scored; more than one: chosen with the layer (pipeline/windows.py).
    windows: tuple[int, ...] = (32,)


@dataclass(frozen=True)
class AlignSpec:
    """How word features reach the neural clock.

    ``method`` is "auto" or one of :data:`brainalign.align.METHODS`; ``delays`` FIR
    delays (samples; ``None``: the method's default, :data:`brainalign.align.DEFAULT_DELAYS`); ``trim`` samples dropped at each run's start and end;
    ``tmin``/``tmax`` the epoch window (s).
    """

    method: str = "auto"
    delays: Optional[tuple[int, ...]] = None  # None: the method's default (brainalign.align.DEFAULT_DELAYS)
    window: int = 3
    trim: tuple[int, int] = (0, 0)
    zscore: bool = True
    tmin: float = 0.2
    tmax: float = 0.6


@dataclass(frozen=True)
class CVSpec:
    """Outer folds (:func:`brainalign.encoding.make_folds`) and inner alpha-selection folds."""

    kind: str = "contiguous"
    n_folds: int = 5
    column: Optional[str] = None
    inner_cv: int = 5


@dataclass(frozen=True)
class RSASpec:
    """RDM metric, comparison, transform (GT bounds ``lower``/``upper``) and number of items."""

    metric: str = "correlation"
    compare: str = "spearman"
    transform: str = "none"
    lower: float = 0.2
    upper: float = 0.8
    n_items: int = 200
    geodesic_method: str = "twostep"
    zero_edges: str = "drop"
    p: float = 0.05
    k: int = 1
    rank: bool = True
    select_gt: bool = False
    select_step: float = 0.05


@dataclass(frozen=True)
class GeometrySpec:
    """Geometry metrics (brainalign.geometry) between brain and layer patterns, and each layer's ID.

    ``k`` neighbours (k-NN metrics), CKA ``cka_kernel``/``debiased``, shape ``alpha``
    (partial whitening), ``shape_kind`` and ``shape_folds`` (shape_cv), ID
    ``id_method``/``id_scale`` (GRIDE's n1), ``convergence`` (model x model matrices).
    """

    metrics: tuple[str, ...] = ("mutual_knn", "cka", "shape", "id")
    k: int = 10
    cka_kernel: str = "linear"
    debiased: bool = False
    alpha: float = 1.0
    shape_kind: str = "angular"
    shape_folds: int = 5
    id_method: str = "twonn"
    id_scale: int = 1
    convergence: bool = True


@dataclass(frozen=True)
class ScoreSpec:
    """How to score: methods, ridge alphas, baseline penalty, layer selection, seed."""

    methods: tuple[str, ...] = ("encoding", "rsa")
    alphas: tuple[float, ...] = tuple(10.0**k for k in range(-2, 11))
    baseline_penalty: str = "banded"
    layer_selection: str = "argmax"
    seed: int = 0
    permutations: int = 200
    cv: CVSpec = field(default_factory=CVSpec)
    rsa: RSASpec = field(default_factory=RSASpec)
    geometry: GeometrySpec = field(default_factory=GeometrySpec)


@dataclass(frozen=True)
class StatsSpec:
    """Statistics: FDR on/off and its level ``q``, ceiling, group test, CI level, bootstrap draws."""

    fdr: bool = True
    q: float = 0.05
    ceiling: str = "none"
    group_test: str = "wilcoxon"
    ci: float = 0.95
    n_bootstrap: int = 1000


@dataclass(frozen=True)
class OutputSpec:
    dir: Optional[str] = None
    maps: bool = True
    report: bool = True
    save_folds: bool = True


@dataclass(frozen=True)
class ExecSpec:
    n_jobs: int = 1
    scheduler: Optional[str] = None
    layers_per_task: int = 0
    cache_dir: Optional[str] = None
    device: str = "cpu"
    threads: Optional[int] = None


@dataclass(frozen=True)
class StudySpecs:
    """Every spec of one study (see the module docstring for who reads what)."""

    name: str
    load: LoadSpec
    preprocess: PreprocessSpec
    baseline: Optional[BaselineSpec]
    models: tuple[ModelSpec, ...]
    align: AlignSpec
    score: ScoreSpec
    stats: StatsSpec
    outputs: OutputSpec
    execution: ExecSpec


def _options(opts: dict) -> tuple:
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in opts.items()))


def load_spec(src) -> LoadSpec:
    """LoadSpec of a validated ``data.source`` section (any kind)."""
    common = dict(kind=src.kind, task=src.task, participants=_tuple(src.participants),
                  options=_options(getattr(src, "options", {})))
    if src.kind == "bids":
        tt = (src.trial_type,) if isinstance(src.trial_type, str) else _tuple(src.trial_type)
        return LoadSpec(**common, root=src.root, datatype=src.datatype, session=src.session, runs=_tuple(src.runs),
                        space=src.space, mask=src.mask, atlas=src.atlas, tr=src.tr, word_column=src.word_column,
                        derivatives=src.derivatives, pool_sessions=src.pool_sessions, trial_type=tt,
                        allow_numeric_words=src.allow_numeric_words, high_gamma=src.high_gamma)
    if src.kind == "nifti":
        return LoadSpec(kind=src.kind, task=src.task, participants=_tuple(src.participants), root=src.root,
                        exclude=tuple(src.exclude), bold=src.bold, words=src.words, tr=src.tr, mask=src.mask,
                        atlas=src.atlas, tier=src.tier, word_column=src.word_column)
    if src.kind == "adapter":
        return LoadSpec(**common, root=src.root, adapter=src.adapter, exclude=tuple(src.exclude))
    where = dict(root=src.root) if src.kind == "roi_table" else dict(path=src.path)
    return LoadSpec(**common, **where, adapter=src.adapter, exclude=tuple(src.exclude))


def modality_of(load: LoadSpec) -> str:
    """``fmri``, ``meg``, ``eeg``, ``ieeg`` or ``erp`` (per-word ERP tables) for a data source."""
    if load.kind == "word_erp":
        return "erp"
    if load.kind == "roi_table":
        return "fmri"
    return {"func": "fmri"}.get(load.datatype, load.datatype)


def window_grid_allowed(scoring) -> bool:
    """False when a ``scoring`` setting needs one window per model (``auto`` then means one)."""
    return scoring.layer_selection == "argmax" and not scoring.rsa.select_gt


def model_spec(m, modality: str = "fmri", grid_allowed: bool = True) -> ModelSpec:
    cw = list(m.context_words) if isinstance(m.context_words, (list, tuple)) else m.context_words
    return ModelSpec(label=m.label, path=m.path, layers=m.layers if m.layers == "all" else tuple(int(x) for x in m.layers),
                     context=m.context, context_words=cw, pooling=m.pooling, batch_size=m.batch_size,
                     revision=m.revision, trust_remote_code=m.trust_remote_code, with_baseline=m.with_baseline,
                     windows=resolve_windows(cw, m.context, modality, grid_allowed=grid_allowed))


def specs_from_config(cfg) -> StudySpecs:
    """Turn a validated :class:`~brainalign.pipeline.config.PipelineConfig` into :class:`StudySpecs`."""
    d, b, al, sc, st = cfg.data, cfg.baseline, cfg.alignment, cfg.scoring, cfg.statistics
    pp = d.preprocess
    return StudySpecs(
        name=cfg.name,
        load=load_spec(d.source),
        preprocess=PreprocessSpec(detrend=pp.detrend, high_pass=pp.high_pass, low_pass=pp.low_pass,
                                  standardize=pp.standardize, confounds=pp.confounds),
        baseline=None if b is None else BaselineSpec(label=b.label, columns=_tuple(b.columns), delays=_tuple(b.delays)),
        models=tuple(model_spec(m, modality_of(load_spec(d.source)), grid_allowed=window_grid_allowed(sc))
                     for m in cfg.models),
        align=AlignSpec(method=al.method, delays=_tuple(al.delays), window=al.window, trim=tuple(al.trim),
                        zscore=al.zscore, tmin=al.tmin, tmax=al.tmax),
        score=ScoreSpec(methods=tuple(sc.methods), alphas=tuple(float(a) for a in sc.alphas),
                        baseline_penalty=sc.baseline_penalty, layer_selection=sc.layer_selection, seed=sc.seed,
                        permutations=sc.permutations,
                        cv=CVSpec(kind=sc.cv.kind, n_folds=sc.cv.n_folds, column=sc.cv.column, inner_cv=sc.inner_cv),
                        rsa=RSASpec(**sc.rsa.model_dump()),
                        geometry=GeometrySpec(**{**sc.geometry.model_dump(), "metrics": tuple(sc.geometry.metrics)})),
        stats=StatsSpec(fdr=st.fdr, q=st.q, ceiling=st.ceiling, group_test=st.group_test, ci=st.ci,
                        n_bootstrap=st.n_bootstrap),
        outputs=OutputSpec(dir=cfg.outputs.dir, maps=cfg.outputs.maps, report=cfg.outputs.report,
                           save_folds=cfg.outputs.save_folds),
        execution=ExecSpec(**cfg.execution.model_dump()),
    )
