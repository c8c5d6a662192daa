"""Generator recipes for :func:`brainalign.pipeline.simulate.simulate_bids`.

A :class:`Generator` says how simulated fMRI is made from a language model's
layer features: which response model puts word features on the BOLD clock,
how the features are transformed and read out, the generator's own encoder
context, and which noise is added. :data:`FAMILIES` names a few members that
differ from each other in the ways real data may differ from an analysis
recipe; ``"classic"`` is the generator brainalign has always used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import InputError

RESPONSES = ("spm", "glover", "random", "fir")
FEATURES = ("zscore", "raw")
POOLINGS = ("last", "mean")
NOISES = ("white", "ar1", "pink", "drift", "spikes")


@dataclass(frozen=True)
class Generator:
    """How simulated BOLD is generated from one layer's word features.

    Parameters
    ----------
    name : str
        Label written into the truth file.
    response : {"spm", "glover", "random", "fir"}
        Response model. ``"spm"`` / ``"glover"``: nilearn's canonical HRFs, the
        same for every voxel. ``"random"``: a double-gamma HRF per voxel with its
        peak (4-7 s), undershoot (12-18 s), undershoot ratio and dispersions drawn
        within physiological bounds (seeded; parameters in the truth file).
        ``"fir"``: a random smooth FIR shape per voxel over 0-16 s (taps in the
        truth file). ``"random"`` and ``"fir"`` need ``impulses=True``.
    features : {"zscore", "raw"}
        ``"zscore"``: each feature z-scored before the readout; ``"raw"``: the
        layer's states as the model gives them.
    rank : int or None
        Rank of the random readout from features to voxels; ``None`` = full rank.
    context_words : int
        Window context (words) of the generator's own encoder.
    pooling : {"last", "mean"}
        Sub-token pooling of the generator's own encoder.
    noise : tuple of str
        Any of ``"white"``, ``"ar1"``, ``"pink"`` (1/f), ``"drift"`` (slow drifts
        below 1/128 Hz), ``"spikes"`` (a few motion-like spikes shared by all
        voxels).
    ar_phi : float
        Lag-1 coefficient of the AR(1) noise, in (-1, 1).
    impulses : bool
        ``True``: per-word readout amplitudes as impulses at the word onsets on a
        fine grid (<= 50 ms), convolved with the response, sampled at the frame
        times. ``False``: the classic path (features through
        :func:`brainalign.align.fmri_design` with ``method="hrf"``, then the readout).
    per_subject_readout : bool
        Each participant its own random readout (else one code shared by all).
    """

    name: str = "classic"
    response: str = "spm"
    features: str = "zscore"
    rank: int | None = 4
    context_words: int = 20
    pooling: str = "last"
    noise: tuple[str, ...] = ("white",)
    ar_phi: float = 0.5
    impulses: bool = False
    per_subject_readout: bool = False

    def __post_init__(self):
        object.__setattr__(self, "noise", tuple(self.noise))
        _check_choice("response", self.response, RESPONSES)
        _check_choice("features", self.features, FEATURES)
        _check_choice("pooling", self.pooling, POOLINGS)
        if not self.noise:
            raise InputError("generator noise is empty: give at least one of " + ", ".join(NOISES))
        for n in self.noise:
            _check_choice("noise", n, NOISES)
        if len(set(self.noise)) != len(self.noise):
            raise InputError(f"generator noise {list(self.noise)} repeats a component")
        if self.rank is not None and (isinstance(self.rank, bool) or int(self.rank) != self.rank or self.rank < 1):
            raise InputError(f"generator rank {self.rank!r} must be a positive integer or None (full rank)")
        if isinstance(self.context_words, bool) or int(self.context_words) != self.context_words or self.context_words < 1:
            raise InputError(f"generator context_words {self.context_words!r} must be a positive integer")
        if not -1.0 < float(self.ar_phi) < 1.0:
            raise InputError(f"generator ar_phi {self.ar_phi!r} must lie in (-1, 1)")
        if self.response in ("random", "fir") and not self.impulses:
            raise InputError(f"generator response {self.response!r} is per voxel and needs impulses=True")

    def to_dict(self) -> dict:
        """JSON-able dictionary of every field (noise as a list)."""
        d = asdict(self)
        d["noise"] = list(self.noise)
        return d


def _check_choice(field: str, value, choices) -> None:
    if value not in choices:
        raise InputError(f"generator {field} {value!r} is not one of {', '.join(choices)}")


FAMILIES: dict[str, Generator] = {
    # brainalign's generator so far: features through fmri_design's SPM HRF, rank-4 shared readout, white noise
    "classic": Generator(),
    # an independent pipeline's recipe: onset impulses, Glover HRF, 10-word window, AR(1) noise
    "glover_ar1": Generator("glover_ar1", response="glover", context_words=10, noise=("ar1",), ar_phi=0.5,
                            impulses=True),
    # onset impulses through SPM HRF, AR(1) plus slow drifts (the dataset of issue 14)
    "spm_ar1_drift": Generator("spm_ar1_drift", context_words=10, noise=("ar1", "drift"), ar_phi=0.4, impulses=True),
    # a different double-gamma HRF per voxel, AR(1) + drifts, each participant its own readout
    "random_hrf": Generator("random_hrf", response="random", noise=("ar1", "drift"), ar_phi=0.3, impulses=True,
                            per_subject_readout=True),
    # a non-gamma FIR shape per voxel, mean-pooled 15-word encoder, 1/f noise and motion-like spikes
    "fir_pink": Generator("fir_pink", response="fir", context_words=15, pooling="mean", noise=("pink", "spikes"),
                          impulses=True),
    # raw (un-normalised) states, rank-2 readout, impulses, white noise with drifts
    "raw_lowrank": Generator("raw_lowrank", features="raw", rank=2, context_words=10, noise=("white", "drift"),
                             impulses=True),
}


def resolve_generator(generator: "Generator | str | None", rank: int | None = None) -> Generator:
    """A :class:`Generator` from an instance, a :data:`FAMILIES` name or ``None`` (classic).

    ``rank`` (when not ``None``) overrides the generator's readout rank.
    """
    if generator is None:
        gen = FAMILIES["classic"]
    elif isinstance(generator, Generator):
        gen = generator
    elif isinstance(generator, str):
        if generator not in FAMILIES:
            raise InputError(f"generator {generator!r} is not one of {', '.join(FAMILIES)}")
        gen = FAMILIES[generator]
    else:
        raise InputError(f"generator {generator!r} must be a Generator, a family name or None")
    if rank is not None and rank != gen.rank:
        gen = replace(gen, rank=rank)
    return gen
