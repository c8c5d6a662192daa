"""Every error brainalign raises on purpose.

All derive from :class:`BrainAlignError`, so a caller (and the CLI) can catch the
whole family in one place. Messages are one line: they name the file, field or value
at fault and say what to do about it.

Areas append their own subclasses under their heading; keep this the only module
that defines exception types.
"""
from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class BrainAlignError(Exception):
    """Base class of every error raised on purpose by brainalign."""


# --- input the user handed us -------------------------------------------------
class InputError(BrainAlignError, ValueError):
    """Bad input: a value, shape or file content that brainalign refuses."""


class ConfigError(InputError):
    """An invalid configuration file or option."""


class UnsafeNameError(InputError):
    """A label that would become part of a path contains separators or ``..``."""


class ShapeMismatchError(InputError):
    """Two arrays or tables that must agree in length do not."""


class NonFiniteError(InputError):
    """NaN or infinite values where finite numbers are required."""


class NonNumericError(InputError, TypeError):
    """Values that are not numbers (strings, objects) where numbers are required."""


# --- data on disk ----------------------------------------------------------------
class DataError(BrainAlignError):
    """A data file or dataset that cannot be read as expected."""


class MissingDataError(DataError, FileNotFoundError):
    """A file, subject, task or run that does not exist (lists what does)."""


class CorruptFileError(DataError):
    """A file exists but cannot be parsed (truncated NIfTI, broken table...)."""


class ConstantSignalError(DataError):
    """A recording whose targets are all constant (zero variance): nothing to model."""


class DataQualityWarning(UserWarning):
    """Targets or rows dropped from a recording (all-NaN, constant...); counts them."""


class MissingFieldError(DataError, KeyError):
    """A required column or sidecar field is absent (names the file and field)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --- models and activations ----------------------------------------------------
class ModelError(BrainAlignError):
    """A language model that cannot be loaded or used."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """An unknown model path or hub id."""


class NoHiddenStatesError(ModelError):
    """A model that does not expose per-layer hidden states."""


class TokenizationError(InputError):
    """Words that are empty or that the tokenizer turns into nothing."""


class CacheError(BrainAlignError):
    """An activation cache entry that cannot be read or written."""


# --- computation -------------------------------------------------------------------
class AlignmentError(BrainAlignError):
    """Word features that cannot be put on the neural clock as asked."""


class FitError(BrainAlignError, ValueError):
    """A model that cannot be fitted (too few samples, bad CV split...)."""


class NotFittedError(FitError, _SklearnNotFittedError):
    """An estimator used before ``fit`` (also scikit-learn's ``NotFittedError``)."""


class GeodesicCollapseWarning(UserWarning):
    """Graph geodesics of an RDM that collapsed (one zero-cost component holding
    most stimuli, or all finite distances equal); names the settings at fault."""


# --- pipeline ----------------------------------------------------------------------
class PipelineError(BrainAlignError):
    """A pipeline step that failed for one participant or task."""


def check_safe_label(label: str, what: str = "label") -> str:
    """Return ``label`` if it is safe to embed in a file name.

    Parameters
    ----------
    label : str
        A participant, task, model or run label that will become part of a path.
    what : str
        What the label is, for the error message.

    Raises
    ------
    UnsafeNameError
        If the label is empty, contains a path separator, ``..``, or characters
        other than letters, digits, ``-``, ``.`` and ``+``. BIDS labels are
        alphanumeric; we also allow ``-`` and ``.`` for model names.
    """
    import re

    s = str(label)
    if not s or ".." in s or "/" in s or "\\" in s or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+-]*", s):
        raise UnsafeNameError(
            f"{what} {s!r} is not a safe name: use letters, digits, '-', '.' or '+' "
            "(no path separators, no '..', no '_')"
        )
    return s


class JobCancelled(BrainAlignError):
    """A service job was cancelled by its user; raised at a task boundary to stop the run."""


# --- service (issue 12) ------------------------------------------------------------
class ServiceError(BrainAlignError):
    """The alignment service's store or runner refused something (bad user name, unusable database)."""


class AccessDeniedError(ServiceError, PermissionError):
    """A submitted job names a path outside the server's data or model roots, or asks for
    something the server does not allow (``trust_remote_code``); the API answers 403."""


class JobInterrupted(ServiceError):
    """The service is stopping: a running job stops at a task boundary and goes back to the queue."""


# --- service client (issue 12) -----------------------------------------------------
class ClientError(BrainAlignError):
    """A brainalign service refused a client's request or could not be reached; the
    message names the server's answer (HTTP status and detail)."""
