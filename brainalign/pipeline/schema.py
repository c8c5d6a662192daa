"""The configuration schema (pydantic models); loading and messages are in :mod:`.config`.

Sections
--------
``data``        where the recordings come from (``source``: bids | roi_table | word_erp)
                and how they are cleaned (``preprocess``).
``baseline``    optional regressors given with the data (word rate, confounds...).
``models``      the language models: label, path or id, layers, context, pooling.
``alignment``   how word features reach the neural clock (lanczos | hrf | word | epochs).
``scoring``     encoding and/or RSA, cross-validation, alphas, seed, layer selection.
``statistics``  FDR level, ceiling, group test, confidence intervals.
``outputs``     output folder, maps, reports.
``execution``   n_jobs, Dask scheduler, layers per task.

Option lists (alignment methods, CV kinds, RSA metrics and comparisons, layer
selection, model context and pooling) are the kernels' own names (:mod:`.choices`).
The validated configuration is turned into frozen specs in one place,
:func:`brainalign.pipeline.specs.specs_from_config`; no configuration object reaches
a kernel. Every field here is read there (``tests/test_config_fields.py``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import UnsafeNameError, check_safe_label
from ..io.bids import load_options
from . import choices as C

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGED_MODEL = "packaged:minilm"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _label(value: str, what: str) -> str:
    try:
        return check_safe_label(value, what)
    except UnsafeNameError as exc:  # pydantic needs ValueError
        raise ValueError(str(exc)) from None


# ----------------------------------------------------------------------------- data
class Preprocess(_Strict):
    """Per-run cleaning of the neural signal (nilearn.signal.clean)."""

    detrend: bool = False
    high_pass: Optional[float] = Field(None, gt=0, description="Hz")
    low_pass: Optional[float] = Field(None, gt=0, description="Hz")
    standardize: bool = True
    confounds: Literal[C.CONFOUND_STRATEGIES] = Field(
        "auto", description="confounds regressed out with the cleaning (nilearn.signal.clean), the CLI's --confounds: "
        "'auto' = fMRIPrep's 'simple' when fMRIPrep derivatives are read (else the loader's own confounds table, if "
        "any); 'simple', 'compcor', 'scrubbing': nilearn's load_confounds_strategy on fMRIPrep's confounds; 'none'")

    @field_validator("confounds", mode="before")
    @classmethod
    def _strategy(cls, v):
        if isinstance(v, bool):
            raise ValueError(f"{str(v).lower()} is not a confound strategy: use one of "
                             f"{', '.join(C.CONFOUND_STRATEGIES)} (--confounds)")
        return v


class BidsSource(_Strict):
    kind: Literal["bids"] = "bids"
    root: str
    task: Optional[str] = None
    participants: Optional[list[str]] = None
    datatype: Literal["func", "meg", "eeg", "ieeg"] = "func"
    session: Optional[str] = None
    runs: Optional[list[Union[int, str]]] = None
    space: Optional[str] = None
    mask: Optional[str] = None
    atlas: Optional[str] = None
    tr: Optional[float] = Field(None, gt=0)
    word_column: str = "word"
    derivatives: str = Field("auto", description="fMRIPrep folder (--derivatives): 'auto' = <root>/derivatives/"
                             "fmriprep when it exists, 'none' = the raw BOLD, or a path")
    pool_sessions: bool = Field(False, description="fit all sessions together, session x run as the CV runs")
    trial_type: Optional[Union[str, list[str]]] = Field(None, description="keep only events of these trial types")
    allow_numeric_words: bool = Field(False, description="accept numeric codes in the word column as words")
    high_gamma: bool = Field(False, description="iEEG: high-gamma envelope (70-150 Hz, 100 Hz)")
    options: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments to load_bids")

    _v_task = field_validator("task")(lambda v: None if v is None else _label(v, "task"))

    @field_validator("options")
    @classmethod
    def _options(cls, v):
        unknown = [str(k) for k in v if k not in load_options()]
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} (load_bids takes: {', '.join(load_options())})")
        own = {"derivatives": "data.source.derivatives (--derivatives)", "session": "data.source.session (--session)",
               "confounds": "data.preprocess.confounds (--confounds)", "clean": "data.preprocess",
               "trial_type": "data.source.trial_type (--trial-type)", "high_gamma": "data.source.high_gamma "
               "(--high-gamma)"}
        clash = [k for k in v if k in own]
        if clash:
            raise ValueError(f"{clash[0]}: set {own[clash[0]]} instead")
        return v

    @field_validator("participants")
    @classmethod
    def _participants(cls, v):
        if v is None:
            return v
        return [_label(str(p).removeprefix("sub-"), "participant label") for p in v]


class _TableSource(_Strict):
    """Fields shared by the non-BIDS table sources."""

    task: str
    participants: Optional[list[str]] = None
    exclude: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)

    _v_task = field_validator("task")(lambda v: _label(v, "task"))


class RoiTableSource(_TableSource):
    """ROI time-course tables (non-BIDS), read by :mod:`brainalign.io.roi_table`."""

    kind: Literal["roi_table"] = "roi_table"
    root: str
    adapter: str = Field("alice", description="which reader in brainalign.io.roi_table")
    task: str = "listening"


class WordErpSource(_TableSource):
    """Per-word ERP tables (one row per participant and word), :mod:`brainalign.io.word_table`."""

    kind: Literal["word_erp"] = "word_erp"
    path: str
    adapter: str = Field("frank2015", description="which reader in brainalign.io.word_table")
    task: str = "reading"


class NiftiSource(_Strict):
    """Plain 4-D NIfTI runs and their transcripts (:mod:`brainalign.io.nifti_source`), found by file patterns.

    ``bold`` and ``words`` are paths under ``root`` with ``{participant}`` and ``{run}`` placeholders (``words``
    may leave ``{participant}`` out when everyone heard the same story); a transcript is a TSV/CSV with onset
    and word columns or a Praat TextGrid.
    """

    kind: Literal["nifti"] = "nifti"
    root: str
    bold: str = Field(description="pattern of the 4-D NIfTI runs, e.g. 'sub-{participant}/run-{run}_bold.nii.gz'")
    words: str = Field(description="pattern of the transcripts (TSV/CSV with onset and word, or TextGrid)")
    task: str = "task"
    participants: Optional[list[str]] = None
    exclude: list[str] = Field(default_factory=list)
    tr: Optional[float] = Field(None, gt=0, description="s; default: the NIfTI header's time step")
    mask: Optional[str] = None
    atlas: Optional[str] = None
    tier: Optional[str] = Field(None, description="TextGrid tier of the words")
    word_column: Optional[str] = Field(None, description="transcript column of the words (default: detected)")

    _v_task = field_validator("task")(lambda v: _label(v, "task"))

    @field_validator("bold")
    @classmethod
    def _bold(cls, v):
        if "{participant}" not in v:
            raise ValueError("the pattern needs a {participant} placeholder, e.g. 'sub-{participant}/run-{run}.nii.gz'")
        return v


class AdapterSource(_Strict):
    """A loader of your own: ``adapter: mylab.loaders:load_subject`` (a module path, or a .py file, and a function).

    The function is called as ``fn(root, participant, **options)`` and returns a
    :class:`brainalign.pipeline.sources.Loaded` or a tuple ``(recording, stimulus[, baseline[, confounds]])``.
    """

    kind: Literal["adapter"] = "adapter"
    adapter: str = Field(description="'package.module:function' or 'path/to/file.py:function'")
    root: Optional[str] = None
    task: str = "task"
    participants: Optional[list[str]] = None
    exclude: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the function")

    _v_task = field_validator("task")(lambda v: _label(v, "task"))

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, v):
        mod, sep, fn = v.rpartition(":")
        if not sep or not mod or not fn.isidentifier():
            raise ValueError(f"{v!r} is not 'module:function' (e.g. 'mylab.loaders:load_subject')")
        return v


Source = Annotated[Union[BidsSource, RoiTableSource, WordErpSource, NiftiSource, AdapterSource],
                   Field(discriminator="kind")]


class DataConfig(_Strict):
    source: Source
    preprocess: Preprocess = Field(default_factory=Preprocess)


# ------------------------------------------------------------------------- baseline
class BaselineConfig(_Strict):
    """Regressors given with the data, fitted alone and under every model layer."""

    label: str = "baseline"
    columns: Optional[list[str]] = Field(None, description="columns of the loader's baseline table; None = all")
    delays: Optional[list[int]] = Field(None, description="FIR delays for the baseline (samples); None = none")

    _v_label = field_validator("label")(lambda v: _label(v, "baseline label"))

    @model_validator(mode="before")
    @classmethod
    def _no_confounds(cls, v):
        if isinstance(v, dict) and "confounds" in v:
            raise ValueError("baseline.confounds is gone: confounds are regressed out of the signal with "
                             "data.preprocess.confounds (--confounds), one field for both")
        return v


# --------------------------------------------------------------------------- models
class ModelConfig(_Strict):
    label: str
    path: str = Field(PACKAGED_MODEL, description="Hugging Face id, local folder, or 'packaged:minilm'")
    layers: Union[Literal["all"], list[int]] = "all"
    context: Literal[C.MODEL_CONTEXTS] = "window"
    context_words: Union[Literal["auto"], int, list[int]] = Field(
        "auto", description="words of context per word (context 'window'); a list of 2-6 windows is scored at "
        "each and the window chosen with the layer, per target (held-out r; brainalign.pipeline.windows); "
        "'auto': [10, 20, 32] for fMRI, 32 otherwise (docs/validation.md 3b)")
    pooling: Literal[C.MODEL_POOLINGS] = "last"
    batch_size: int = Field(16, ge=1)
    revision: Optional[str] = None
    trust_remote_code: bool = False
    with_baseline: bool = Field(True, description="fit baseline + layer when a baseline is configured")

    _v_label = field_validator("label")(lambda v: _label(v, "model label"))

    @field_validator("context_words", mode="before")
    @classmethod
    def _context_words(cls, v):
        if isinstance(v, bool) or (not isinstance(v, (str, int, list)) or (isinstance(v, str) and v != "auto")):
            raise ValueError(f"{v!r}: give 'auto', a number of words (e.g. 20) or a list such as [10, 20, 32]")
        if isinstance(v, int) and v < 1:
            raise ValueError(f"{v}: a window holds at least 1 word")
        if isinstance(v, list):
            if not 2 <= len(v) <= 6 or len(set(v)) != len(v):
                raise ValueError(f"{v}: a list of windows holds 2 to 6 different numbers of words")
            if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in v):
                raise ValueError(f"{v}: every window is a whole number of words >= 1")
            return sorted(v)
        return v

    @model_validator(mode="after")
    def _windows_need_window(self):
        if isinstance(self.context_words, list) and self.context != "window":
            raise ValueError(f"context_words {self.context_words} is a list of windows, which needs context "
                             f"'window' (context {self.context!r} reads no window)")
        return self

    @field_validator("layers")
    @classmethod
    def _layers(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("give at least one layer or 'all'")
            if any(int(x) < 0 for x in v):
                raise ValueError("layer indices are >= 0 (0 = embeddings)")
            if len(set(v)) != len(v):
                raise ValueError("layers are repeated")
        return v


# ------------------------------------------------------------------------ alignment
class AlignmentConfig(_Strict):
    method: Literal[C.ALIGNMENT] = "auto"
    delays: Optional[list[int]] = Field(
        None, description="FIR delays in samples (TRs); default: [0] for hrf (the HRF carries the lag), [1, 2, 3, 4] for lanczos")
    window: int = Field(3, ge=1, description="Lanczos window (lobes)")
    trim: tuple[int, int] = Field((0, 0), description="samples dropped at the start and end of every run")
    zscore: bool = Field(True, description="z-score each design column (within runs for lanczos/hrf)")
    tmin: float = Field(0.2, description="epochs: start of the averaging window after word onset (s)")
    tmax: float = Field(0.6, description="epochs: end of the averaging window (s)")

    @model_validator(mode="after")
    def _check(self):
        if self.tmax <= self.tmin:
            raise ValueError(f"tmax ({self.tmax}) must be > tmin ({self.tmin})")
        if self.delays is not None and (not self.delays or any(d < 0 for d in self.delays)):
            raise ValueError("delays are a non-empty list of samples >= 0 (or leave alignment.delays out)")
        if min(self.trim) < 0:
            raise ValueError("trim values are >= 0")
        return self


# -------------------------------------------------------------------------- scoring
class CVConfig(_Strict):
    kind: Literal[C.CV_KINDS] = "contiguous"
    n_folds: int = Field(5, ge=2)
    column: Optional[str] = Field(None, description="group: stimulus column whose values are the folds")

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "group" and not self.column:
            raise ValueError("cv.kind 'group' needs cv.column (e.g. 'sentence')")
        return self


class RSAConfig(_Strict):
    metric: Literal[C.RSA_METRICS] = "correlation"
    compare: Literal[C.RSA_COMPARE] = "spearman"
    transform: Literal[C.RSA_TRANSFORMS] = "none"
    lower: float = Field(0.2, ge=0, le=1)
    upper: float = Field(0.8, ge=0, le=1)
    n_items: int = Field(200, ge=4, description="items (time blocks or words) in the RDMs")
    geodesic_method: Literal[C.RSA_GEODESIC_METHODS] = Field(
        "twostep", description="transform 'geodesic': the tRSA authors' graph (brainalign.rsa.geodesic method)")
    zero_edges: Literal[C.RSA_ZERO_EDGES] = Field(
        "drop", description="geodesic: pairs of GT value 0 are no edge ('drop', the authors') or zero-cost ('keep')")
    p: float = Field(0.05, gt=0, le=1, description="geodesic p_shortest/p_nearest: fraction of pairs/stimuli")
    k: int = Field(1, ge=1, description="geodesic k_nearest: neighbours per stimulus")
    rank: bool = Field(True, description="geodesic: rank-transform the path lengths (the authors' default)")
    select_gt: bool = Field(
        False, description="group level: choose (lower, upper) by leave-one-participant-out identification of the "
        "regions from the neural RDMs alone (brainalign.rsa.select_gt), then re-score RSA with that band")
    select_step: float = Field(0.05, gt=0, le=0.5, description="select_gt: grid step of lower and upper")

    @model_validator(mode="after")
    def _check(self):
        if self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) must be <= upper ({self.upper})")
        if self.select_gt and self.transform == "none":
            raise ValueError("select_gt needs transform 'gt' or 'geodesic'")
        if self.select_gt and self.transform == "geodesic" and self.geodesic_method != "twostep":
            raise ValueError("select_gt chooses the GT band of geodesic_method 'twostep' (the other graphs "
                             "use p or k, not lower/upper)")
        return self


class GeometryConfig(_Strict):
    """Representational geometry between brain patterns and layer features (brainalign.geometry)."""

    metrics: list[Literal[C.GEOMETRY_METRICS]] = Field(
        default_factory=lambda: ["mutual_knn", "cka", "shape", "id"],
        description="per layer and region on the RSA items; 'id': each layer's intrinsic dimension over words")
    k: int = Field(10, ge=1, description="neighbours of mutual_knn, cycle_knn and cknna")
    cka_kernel: Literal[C.GEOMETRY_CKA_KERNELS] = "linear"
    debiased: bool = Field(False, description="cka: Song et al.'s unbiased HSIC")
    alpha: float = Field(1.0, ge=0, le=1, description="shape: partial whitening (1 Procrustes, 0 CCA-like)")
    shape_kind: Literal[C.GEOMETRY_SHAPE_KINDS] = "angular"
    shape_folds: int = Field(5, ge=2, description="shape_cv: contiguous folds of items")
    id_method: Literal[C.GEOMETRY_ID_METHODS] = "twonn"
    id_scale: int = Field(1, ge=1, description="gride: the scale n1 (n2 = 2 n1)")
    convergence: bool = Field(True, description="with two or more models: layer x layer model-to-model matrices")

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v):
        if not v:
            raise ValueError("choose at least one geometry metric")
        return list(dict.fromkeys(v))


class ScoringConfig(_Strict):
    methods: list[Literal[C.SCORING_METHODS]] = Field(default_factory=lambda: ["encoding", "rsa"])
    cv: CVConfig = Field(default_factory=CVConfig)
    inner_cv: int = Field(5, ge=2)
    alphas: list[float] = Field(default_factory=lambda: [10.0**k for k in range(-2, 11)])
    seed: int = 0
    permutations: int = Field(
        200, ge=0, description="shifts of the refit circular-shift null behind each target's p "
        "(brainalign.encoding.permutation; docs/validation.md 'Calibration of per-target p-values'); "
        "0 = the old one-sided t-test over the outer folds' r, which is not calibrated")
    baseline_penalty: Literal[C.BASELINE_PENALTIES] = Field(
        "banded", description="'banded' (default): baseline + layer as a two-band ridge "
        "(brainalign.encoding.BandedRidgeCV), so the baseline is not shrunk with the layer's features; "
        "'shared': one ridge with one penalty for both (shrinks a small baseline; docs/validation.md)")
    layer_selection: Literal[C.LAYER_SELECTION] = Field(
        "argmax", description="argmax of r; 'unique'/'unique_adjacent'/'unique_pairwise'/'single': brainalign.encoding.layer_id."
        "identify_layer_by_encoding (variance partitioning); 'rsa': brainalign.rsa.identify_layer")
    rsa: RSAConfig = Field(default_factory=RSAConfig)
    geometry: GeometryConfig = Field(default_factory=GeometryConfig)

    @field_validator("methods")
    @classmethod
    def _methods(cls, v):
        if not v:
            raise ValueError("choose at least one of 'encoding', 'rsa', 'geometry'")
        return list(dict.fromkeys(v))

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, v):
        if not v or any(a <= 0 for a in v):
            raise ValueError("alphas must be a non-empty list of positive numbers")
        return v


# ----------------------------------------------------------------------- statistics
class StatisticsConfig(_Strict):
    fdr: bool = True
    q: float = Field(0.05, gt=0, lt=1, description="FDR level: p_fdr < q is significant (results attr fdr_q)")
    ceiling: Literal["auto", "none", "loo_isc", "split_half"] = Field(
        "auto", description="noise ceiling (r_norm = r / ceiling): 'loo_isc' leave-one-out inter-subject correlation "
        "(3+ participants, same stimulus and targets); 'split_half' each participant's runs repeating the same stimulus "
        "(same words at the same onsets), Spearman-Brown corrected to one run; 'auto' loo_isc when it applies, else "
        "split_half where the runs repeat, else none; the kind used is recorded (brainalign.pipeline.ceiling)")
    group_test: Literal["none", "ttest", "wilcoxon"] = "wilcoxon"
    ci: float = Field(0.95, gt=0, lt=1)
    n_bootstrap: int = Field(1000, ge=0)


# -------------------------------------------------------------------------- outputs
class OutputsConfig(_Strict):
    dir: Optional[str] = None
    maps: bool = True
    report: bool = True
    save_folds: bool = True


class ExecutionConfig(_Strict):
    n_jobs: int = Field(1, ge=1)
    scheduler: Optional[str] = None
    layers_per_task: int = Field(0, ge=0, description="0 = all layers of a model in one task")
    cache_dir: Optional[str] = None
    device: str = "cpu"
    threads: Optional[int] = Field(
        None, ge=1,
        description="compute threads of every task (None: this machine's CPU count); every executor "
                    "uses the same number, so serial, process and Dask runs give bit-identical results")


class PipelineConfig(_Strict):
    """The whole study."""

    name: str = "study"
    data: DataConfig
    baseline: Optional[BaselineConfig] = None
    models: list[ModelConfig] = Field(default_factory=lambda: [ModelConfig(label="MiniLM")])
    alignment: AlignmentConfig = Field(default_factory=AlignmentConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    statistics: StatisticsConfig = Field(default_factory=StatisticsConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @field_validator("models")
    @classmethod
    def _models(cls, v):
        if not v:
            raise ValueError("give at least one model")
        labels = [m.label for m in v]
        if len(set(labels)) != len(labels):
            raise ValueError(f"model labels must be unique, got {labels}")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.baseline is not None and self.baseline.label in {m.label for m in self.models}:
            raise ValueError(f"baseline label {self.baseline.label!r} is also a model label")
        if self.baseline is not None and "encoding" not in self.scoring.methods:
            raise ValueError("a baseline needs scoring.methods to include 'encoding'")
        grid = [m.label for m in self.models if isinstance(m.context_words, list)]
        sc = self.scoring
        if grid and (sc.layer_selection != "argmax" or sc.rsa.select_gt):
            what = (f"scoring.layer_selection {sc.layer_selection!r}" if sc.layer_selection != "argmax"
                    else "scoring.rsa.select_gt")
            raise ValueError(f"models {grid}: a list of context_words is chosen with the layer by held-out r, "
                             f"which {what} does not do; give one window (e.g. context_words: 20)")
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def source(self):
        return self.data.source

    def settings(self) -> dict:
        """Every setting as plain JSON-able values (used in attrs and sidecars)."""
        return json.loads(self.model_dump_json(exclude={"outputs", "execution"}))

    def config_hash(self) -> str:
        """SHA-256 (16 hex digits) of the settings that change results.

        Output folder, n_jobs and scheduler do not change results and are excluded,
        so the same study resumes under another executor.
        """
        blob = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
