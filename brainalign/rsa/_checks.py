"""Input checks and small array helpers shared by the RSA kernels (private)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, NonFiniteError, ShapeMismatchError


def is_torch(x: Any) -> bool:
    """True when ``x`` is a :class:`torch.Tensor` (without importing torch)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a floating numpy array (torch tensors are copied to CPU)."""
    if is_torch(x):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{name} has dtype {arr.dtype}; pass a real-valued numeric array")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def like_input(out: np.ndarray, ref: Any):
    """Return ``out`` as a torch tensor when ``ref`` was one, else unchanged."""
    if is_torch(ref):
        import torch

        return torch.from_numpy(np.ascontiguousarray(out)).to(ref.device)
    return out


def as_rdm_stack(x: Any, name: str = "rdm", *, allow_nan: bool = False,
                 check_symmetry: bool = True) -> tuple[np.ndarray, bool]:
    """Validate square RDMs and return them as a stack.

    Parameters
    ----------
    x : array-like, shape (n, n) or (k, n, n)
        One RDM or a stack of RDMs.
    name : str
        Name used in error messages.

    Returns
    -------
    stack : ndarray, shape (k, n, n)
    single : bool
        True when ``x`` was one (n, n) RDM.
    """
    arr = to_numpy(x, name)
    if arr.ndim not in (2, 3) or arr.shape[-1] != arr.shape[-2]:
        raise ShapeMismatchError(
            f"{name} has shape {arr.shape}; pass a square RDM (n, n) or a stack (k, n, n)"
        )
    n = arr.shape[-1]
    if n < 3:
        raise InputError(f"{name} has {n} stimuli; an RDM needs at least 3")
    single = arr.ndim == 2
    stack = arr[None] if single else arr
    if not allow_nan and not np.isfinite(stack).all():
        bad = np.argwhere(~np.isfinite(stack))[0]
        raise NonFiniteError(
            f"{name} holds a non-finite value at index {tuple(int(i) for i in bad)}; "
            "RDMs must be finite (fill or drop unreachable geodesic pairs first)"
        )
    if check_symmetry:
        scale = np.nanmax(np.abs(stack)) if stack.size else 0.0
        asym = np.abs(stack - np.swapaxes(stack, -1, -2))
        if np.nanmax(asym, initial=0.0) > 1e-8 * max(float(scale), 1.0):
            raise InputError(f"{name} is not symmetric; pass square symmetric RDMs")
    return stack, single


def triu_vectors(stack: np.ndarray) -> np.ndarray:
    """Upper off-diagonal triangles of a (k, n, n) stack, shape (k, n*(n-1)/2)."""
    n = stack.shape[-1]
    iu, ju = np.triu_indices(n, k=1)
    return stack[:, iu, ju]


def from_triu(vectors: np.ndarray, n: int, diag: float = 0.0) -> np.ndarray:
    """Square (k, n, n) symmetric matrices from (k, m) upper triangles."""
    k = vectors.shape[0]
    out = np.full((k, n, n), diag, dtype=vectors.dtype)
    iu, ju = np.triu_indices(n, k=1)
    out[:, iu, ju] = vectors
    out[:, ju, iu] = vectors
    return out


def check_unit_interval(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name}={value} is outside [0, 1]; quantile levels are fractions")
    return value


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if seed is None:
        raise InputError("seed=None is not reproducible; pass an integer seed")
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(int(seed))
