"""Input checks shared by the geometry kernels (private)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError, NonFiniteError, ShapeMismatchError


def _to_float(x: Any, name: str) -> np.ndarray:
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{name} has dtype {arr.dtype}; pass a real-valued numeric array")
    return arr.astype(np.float64, copy=False)


def as_patterns(x: Any, name: str, *, min_items: int = 2) -> tuple[list[np.ndarray], bool]:
    """Validate one (items, features) array or a stack of them.

    Parameters
    ----------
    x : array (n, p), array (L, n, p), or a sequence of (n, p_l) arrays
        Patterns: one row per item (stimulus), one column per feature (unit).
    name : str
        Argument name used in error messages.
    min_items : int
        Fewest items accepted.

    Returns
    -------
    stack : list of float64 arrays, each (n, p_l)
    single : bool
        True when ``x`` was one 2-D array.
    """
    if isinstance(x, (list, tuple)):
        if not x:
            raise InputError(f"{name} is an empty sequence; pass (items, features) arrays")
        stack = [_to_float(a, f"{name}[{i}]") for i, a in enumerate(x)]
        single = False
    else:
        arr = _to_float(x, name)
        if arr.ndim == 2:
            stack, single = [arr], True
        elif arr.ndim == 3:
            stack, single = list(arr), False
        else:
            raise ShapeMismatchError(
                f"{name} has shape {arr.shape}; pass (items, features) or (layers, items, features)"
            )
    check_stack(stack, name, single, min_items, _first_nonfinite)
    return stack, single


def _first_nonfinite(a: np.ndarray) -> tuple[int, ...] | None:
    bad = ~np.isfinite(a)
    return tuple(int(j) for j in np.argwhere(bad)[0]) if bad.any() else None


def check_stack(stack: Sequence, name: str, single: bool, min_items: int,
                first_nonfinite: Callable[[Any], tuple[int, ...] | None]) -> int:
    """Refuse a stack of patterns (numpy arrays or tensors) that are not 2-D, finite, on the same items.

    ``first_nonfinite(a)`` returns the index of ``a``'s first NaN / inf or None.
    Returns the number of items.
    """
    n = stack[0].shape[0] if stack[0].ndim == 2 else -1
    for i, a in enumerate(stack):
        label = name if single else f"{name}[{i}]"
        if a.ndim != 2:
            raise ShapeMismatchError(f"{label} has shape {tuple(a.shape)}; pass (items, features)")
        if a.shape[0] != n:
            raise ShapeMismatchError(
                f"{label} has {a.shape[0]} items but {name}[0] has {n}; stack layers of the same items"
            )
        if a.shape[1] < 1:
            raise InputError(f"{label} has shape {tuple(a.shape)}; pass at least one feature")
        bad = first_nonfinite(a)
        if bad is not None:
            raise NonFiniteError(f"{label} holds a non-finite value at index {bad}; pass finite patterns")
    if n < min_items:
        raise InputError(f"{name} has {n} items; pass at least {min_items}")
    return n


def same_items(a: Sequence[np.ndarray], b: Sequence[np.ndarray], na: str = "A", nb: str = "B") -> int:
    """Check that two stacks describe the same number of items; return it."""
    if a[0].shape[0] != b[0].shape[0]:
        raise ShapeMismatchError(
            f"{na} has {a[0].shape[0]} items but {nb} has {b[0].shape[0]}; "
            "pass patterns of the same items in the same order"
        )
    return a[0].shape[0]


def check_k(k: Any, n: int, name: str = "k", *, low: int = 1) -> int:
    """A neighbour count: an integer in [low, n - 1]."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InputError(f"{name}={k!r} is not an integer; pass a neighbour count")
    k = int(k)
    if not low <= k <= n - 1:
        raise InputError(f"{name}={k} is outside [{low}, {n - 1}] for {n} items; pass a smaller {name}")
    return k


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(f"{name}={value!r} is unknown; choose one of {', '.join(map(repr, choices))}")
    return value


def check_fraction(value: Any, name: str, *, closed_high: bool = True) -> float:
    v = float(value)
    ok = 0.0 <= v <= 1.0 if closed_high else 0.0 <= v < 1.0
    if not ok or not np.isfinite(v):
        raise InputError(f"{name}={value!r} is outside [0, 1{']' if closed_high else ')'}; pass a fraction")
    return v


def pairwise(stack_a: list, stack_b: list, single: bool, fn) -> Any:
    """Apply ``fn(i, j)`` to every pair; a float for one pair, else an (La, Lb) matrix."""
    out = np.empty((len(stack_a), len(stack_b)))
    for i in range(len(stack_a)):
        for j in range(len(stack_b)):
            out[i, j] = fn(i, j)
    return float(out[0, 0]) if single else out
