"""The torch path of the geometry kernels (private).

A kernel called with a :class:`torch.Tensor` among its pattern arguments computes in
torch on that tensor's device (CPU or CUDA), as :mod:`brainalign.rsa` does: the
other argument is moved there, the working dtype is float64 when either input is
float64 (or an integer type) and float32 when both are float32. A pair gives a
Python float; a stack gives a torch tensor of the working dtype on that device
(where the numpy path gives an ndarray). Checks and error messages are those of
the numpy path (:mod:`._checks`).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import InputError, ShapeMismatchError
from ._checks import check_stack

#: Bytes of one block of similarities / distances held at a time.
BLOCK_BYTES = 1 << 26


def is_torch(x: Any) -> bool:
    """True when ``x`` is a :class:`torch.Tensor`, or a sequence holding one (without importing torch)."""
    if isinstance(x, (list, tuple)):
        return any(is_torch(a) for a in x)
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _first_tensor(xs: tuple) -> Any:
    for x in xs:
        if isinstance(x, (list, tuple)):
            t = _first_tensor(tuple(x))
            if t is not None:
                return t
        elif is_torch(x):
            return x
    return None


def _members(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def placement(*xs: Any) -> tuple[Any, Any]:
    """(device, dtype) the kernel computes with, from its pattern arguments."""
    import torch

    device = _first_tensor(xs).device
    dtypes = []
    for x in xs:
        for a in _members(x):
            dt = a.dtype if is_torch(a) else torch.from_numpy(np.zeros(0, dtype=np.asarray(a).dtype)).dtype
            dtypes.append(dt)
    f32 = all(dt == torch.float32 for dt in dtypes)
    return device, (torch.float32 if f32 else torch.float64)


def _tensor(a: Any, name: str, device: Any, dtype: Any):
    import torch

    if is_torch(a):
        if a.is_complex():
            raise InputError(f"{name} has dtype {a.dtype}; pass a real-valued numeric array")
        return a.detach().to(device=device, dtype=dtype)
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{name} has dtype {arr.dtype}; pass a real-valued numeric array")
    return torch.as_tensor(np.ascontiguousarray(arr), device=device).to(dtype)


def as_patterns(x: Any, name: str, device: Any, dtype: Any, *, min_items: int = 2) -> tuple[list, bool]:
    """:func:`._checks.as_patterns` for tensors: a list of (n, p_l) tensors and whether ``x`` was one array."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise InputError(f"{name} is an empty sequence; pass (items, features) arrays")
        stack, single = [_tensor(a, f"{name}[{i}]", device, dtype) for i, a in enumerate(x)], False
    else:
        t = _tensor(x, name, device, dtype)
        if t.ndim not in (2, 3):
            raise ShapeMismatchError(
                f"{name} has shape {tuple(t.shape)}; pass (items, features) or (layers, items, features)")
        stack, single = ([t], True) if t.ndim == 2 else (list(t), False)
    check_stack(stack, name, single, min_items, _first_nonfinite)
    return stack, single


def _first_nonfinite(a) -> tuple[int, ...] | None:
    import torch

    bad = ~torch.isfinite(a)
    return tuple(int(j) for j in bad.nonzero()[0]) if bool(bad.any()) else None


def pair_inputs(A: Any, B: Any, min_items: int) -> tuple[list, bool, list, bool]:
    """Both pattern arguments as tensor stacks on one device and dtype."""
    device, dtype = placement(A, B)
    sa, single_a = as_patterns(A, "A", device, dtype, min_items=min_items)
    sb, single_b = as_patterns(B, "B", device, dtype, min_items=min_items)
    return sa, single_a, sb, single_b


def pairwise(stack_a: list, stack_b: list, single: bool, fn: Callable[[int, int], float], dtype: Any = None):
    """``fn(i, j)`` for every pair: a float for one pair, else an (La, Lb) tensor on the inputs' device.

    The tensor has ``dtype``, by default that of ``stack_a``'s tensors.
    """
    import torch

    ref = stack_a[0]
    out = torch.empty((len(stack_a), len(stack_b)), dtype=dtype or ref.dtype, device=ref.device)
    for i in range(len(stack_a)):
        for j in range(len(stack_b)):
            out[i, j] = fn(i, j)
    return float(out[0, 0]) if single else out


def as_result(values: Any, single: bool, *inputs: Any):
    """A float for one value, else the numpy ``values`` as a tensor of the working dtype and device."""
    import torch

    if single:
        return float(np.asarray(values).ravel()[0])
    device, dtype = placement(*inputs)
    return torch.as_tensor(np.asarray(values, dtype=np.float64), device=device).to(dtype)


# ------------------------------------------------------------------ neighbours
def normalize_rows(x, name: str):
    """Rows scaled to unit norm; all-zero rows refused (the numpy path's message)."""
    norms = x.norm(dim=1)
    zero = norms == 0
    if bool(zero.any()):
        i = int(zero.nonzero()[0, 0])
        raise InputError(f"{name} row {i} is all zeros (shape {tuple(x.shape)}); cosine neighbours are undefined")
    return x / norms[:, None]


def _row_block(n: int, x) -> int:
    return max(1, min(n, BLOCK_BYTES // max(1, n * x.element_size())))


def knn_indices(x, k: int, exclude_self: bool = True):
    """Each row's k largest inner products with the rows of ``x`` (n, p): (n, k) int64 indices.

    Row blocks of the similarity GEMM in ``x``'s dtype, each reduced by :func:`torch.topk`;
    no (n, n) matrix is held.
    """
    import torch

    n = x.shape[0]
    b = _row_block(n, x)
    out = torch.empty((n, k), dtype=torch.int64, device=x.device)
    for s in range(0, n, b):
        sim = x[s:s + b] @ x.T
        if exclude_self:
            r = torch.arange(sim.shape[0], device=x.device)
            sim[r, r + s] = -torch.inf
        out[s:s + b] = torch.topk(sim, k, dim=1, sorted=False).indices
    return out


def overlap_mean(ia, ib) -> float:
    """Mean over rows of the number of entries two (n, k) index sets share."""
    n, k = ia.shape
    total = 0
    step = max(1, (1 << 22) // (k * k))
    for s in range(0, n, step):
        total += int((ia[s:s + step, :, None] == ib[s:s + step, None, :]).sum())
    return total / n


def neighbour_distances(x, k: int) -> np.ndarray:
    """Sorted Euclidean distances of each row to its k nearest other rows (n, k), as numpy float64.

    Candidates from row blocks of squared distances (Gram identity) and
    :func:`torch.topk`; the distances of the chosen neighbours are recomputed from
    the differences |x_i - x_j|, as the numpy path does.
    """
    import torch

    n = x.shape[0]
    sq = (x * x).sum(dim=1)
    b = _row_block(n, x)
    idx = torch.empty((n, k), dtype=torch.int64, device=x.device)
    for s in range(0, n, b):
        d2 = sq[s:s + b, None] + sq[None, :] - 2.0 * (x[s:s + b] @ x.T)
        r = torch.arange(d2.shape[0], device=x.device)
        d2[r, r + s] = torch.inf
        idx[s:s + b] = torch.topk(d2, k, dim=1, largest=False, sorted=False).indices
    d = torch.stack([(x - x[idx[:, j]]).norm(dim=1) for j in range(k)], dim=1)
    return np.sort(d.double().cpu().numpy(), axis=1)
