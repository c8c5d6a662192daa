"""Array backends for the ridge kernels: numpy, or torch on CPU / CUDA.

The solver code is written once against :class:`Backend`, a handful of
operations whose numpy and torch spellings differ. Everything else
(``@``, slicing, ``*``, ``.sum(0)``) is spelled the same in both libraries.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg  # noqa: F401 - scipy's own BLAS is loaded before thread limits scan the libraries
from threadpoolctl import ThreadpoolController

from ..errors import InputError

BACKENDS = ("auto", "numpy", "torch")
#: Largest symmetric matrix decomposed on a single thread (see ``Backend.eigh``).
EIGH_SERIAL_MAX = 2048
DTYPES = ("float32", "float64")


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return None
    return torch


@dataclass(frozen=True)
class Backend:
    """A numerical backend.

    Attributes
    ----------
    name : {"numpy", "torch"}
    device : str
        ``"cpu"`` or a torch device string such as ``"cuda"``.
    dtype : {"float32", "float64"}
        Working precision of every array the solver builds.
    """

    name: str
    device: str
    dtype: str

    # -- conversion ------------------------------------------------------------
    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def asarray(self, a: Any) -> Any:
        """``a`` as a backend array of the working dtype (copies only if needed)."""
        if self.name == "numpy":
            return np.asarray(a, dtype=self.np_dtype)
        torch = _torch()
        tdt = getattr(torch, self.dtype)
        if isinstance(a, torch.Tensor):
            return a.to(device=self.device, dtype=tdt)
        a = np.asarray(a, dtype=self.np_dtype)
        if not a.flags.writeable or not (a.flags.c_contiguous or a.flags.f_contiguous):
            a = np.ascontiguousarray(a)
        return torch.as_tensor(a, device=self.device)

    def to_numpy(self, a: Any) -> np.ndarray:
        if self.name == "numpy":
            return np.asarray(a)
        return a.detach().cpu().numpy()

    def view_numpy(self, a: np.ndarray) -> Any:
        """A backend view that writes through to the numpy array ``a`` (CPU only)."""
        if self.name == "numpy":
            return a
        torch = _torch()
        return torch.from_numpy(a)

    @property
    def writes_through(self) -> bool:
        """Whether :meth:`view_numpy` can share memory (numpy, or torch on CPU)."""
        return self.name == "numpy" or self.device == "cpu"

    # -- construction ----------------------------------------------------------
    def zeros(self, shape: tuple) -> Any:
        if self.name == "numpy":
            return np.zeros(shape, dtype=self.np_dtype)
        torch = _torch()
        return torch.zeros(shape, dtype=getattr(torch, self.dtype), device=self.device)

    def index(self, idx: np.ndarray) -> Any:
        """Integer indices usable to index backend arrays."""
        if self.name == "numpy":
            return np.asarray(idx, dtype=np.intp)
        torch = _torch()
        return torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    # -- linear algebra --------------------------------------------------------
    def eigh(self, G: Any) -> tuple[Any, Any]:
        """Eigen-decomposition of a symmetric matrix: ascending eigenvalues, vectors.

        Matrices up to :data:`EIGH_SERIAL_MAX` rows are decomposed on one
        thread: the tridiagonal reduction is a long chain of small parallel
        steps, and when other processes compete for the cores each barrier
        stalls (measured: 0.7 s on one thread against 7-32 s on two, for a
        1280 x 1280 matrix on a loaded 2-core machine). The choice depends on
        the matrix size only, never on the machine's load, so that results are
        bit-identical from run to run (a decomposition on one thread and on two
        differ in the last bits).
        """
        serial = G.shape[0] <= EIGH_SERIAL_MAX
        with thread_limit(self, 1 if serial else None):
            if self.name == "numpy":
                import scipy.linalg

                return scipy.linalg.eigh(G, overwrite_a=True, check_finite=False, driver="evd")
            torch = _torch()
            return torch.linalg.eigh(G)

    def sumsq(self, P: Any, axis: int, overwrite: bool = False) -> Any:
        """Sum of squares along ``axis``.

        With ``overwrite`` a torch ``P`` is squared in place (no temporary):
        squaring then summing is 3-4x faster than ``vector_norm`` along a
        middle axis on CPU.
        """
        if self.name == "numpy":
            if P.ndim == 3 and axis == 1:
                return np.einsum("aij,aij->aj", P, P)
            return (P * P).sum(axis)
        return (P.square_() if overwrite else P * P).sum(axis)

    def contiguous(self, a: Any) -> Any:
        """``a`` in row-major (C) order, copied only when it is not already."""
        if self.name == "numpy":
            return np.ascontiguousarray(a)
        return a.contiguous()

    def empty(self, shape: tuple[int, ...]) -> Any:
        """Uninitialised array of the working dtype on the backend's device."""
        if self.name == "numpy":
            return np.empty(shape, dtype=self.np_dtype)
        torch = _torch()
        return torch.empty(shape, dtype=getattr(torch, self.dtype), device=self.device)

    def host_buffer(self, shape: tuple[int, ...]) -> Any:
        """A host-side torch tensor for device-to-host copies (page-locked when it can be).

        Page-locked memory lets a GPU write at full bus speed; a plain host
        tensor is the fallback when pinning is refused.
        """
        torch = _torch()
        dt = getattr(torch, self.dtype)
        try:
            return torch.empty(shape, dtype=dt, pin_memory=True)
        except RuntimeError:
            return torch.empty(shape, dtype=dt)

    def matmul_into(self, out: Any, A: Any, B: Any) -> Any:
        """``out[...] = A @ B`` without a temporary; returns ``out``.

        ``out`` may be a column block of a larger row-major array (torch
        writes it in place, as BLAS's leading dimension).
        """
        if self.name == "numpy":
            np.matmul(A, B, out=out)
        else:
            _torch().mm(A, B, out=out)
        return out

    def take_rows_into(self, out: Any, a: Any, idx: Any) -> Any:
        """``out[...] = a[idx]`` (idx: backend integer indices); returns ``out``."""
        if self.name == "numpy":
            np.take(a, idx, axis=0, out=out)
        else:
            _torch().index_select(a, 0, idx, out=out)
        return out

    def copy_into(self, out: Any, a: Any) -> Any:
        """``out[...] = a`` for a numpy or backend array ``a`` (cast to the working dtype)."""
        if self.name == "numpy":
            np.copyto(out, a, casting="same_kind")
            return out
        torch = _torch()
        if isinstance(a, torch.Tensor):
            out.copy_(a)
        elif self.device == "cpu":
            np.copyto(out.numpy(), a, casting="same_kind")
        else:
            out.copy_(torch.as_tensor(np.ascontiguousarray(a, dtype=self.np_dtype)))
        return out

    def clip_min(self, a: Any, lo: float) -> Any:
        if self.name == "numpy":
            return np.maximum(a, lo)
        return a.clamp(min=lo)

    def take_columns(self, a: Any, idx: Any) -> Any:
        """``a[:, idx]`` as a new array (idx: backend integer indices)."""
        return a[:, idx]


def resolve_backend(backend: str = "auto", dtype: str = "float32") -> Backend:
    """Pick a :class:`Backend`.

    Parameters
    ----------
    backend : {"auto", "numpy", "torch"}
        ``"auto"`` uses torch (on CUDA when available, else CPU) and numpy when
        torch cannot be imported. On CPU, fits with many targets still run
        their per-batch products through numpy's BLAS, which was the faster
        one on our AMD benchmark machine (``_solver._batches_on_host_blas``).
        ``"torch"`` honours ``BRAINALIGN_DEVICE``
        (e.g. ``cpu``) when set.
    dtype : {"float32", "float64"}
    """
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is not one of {BACKENDS}")
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not one of {DTYPES}; use 'float32' or 'float64'")
    torch = _torch()
    if backend == "numpy" or (backend == "auto" and torch is None):
        return Backend("numpy", "cpu", dtype)
    if torch is None:  # pragma: no cover
        raise InputError("backend 'torch' was asked for but torch is not installed; use backend='numpy'")
    device = os.environ.get("BRAINALIGN_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return Backend("torch", device, dtype)


def available_memory(backend: Backend) -> int:
    """Bytes free for the working set on the backend's device."""
    if backend.name == "torch" and backend.device != "cpu":
        torch = _torch()
        free, _total = torch.cuda.mem_get_info(torch.device(backend.device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


#: Below this many floating-point operations a solve runs on one thread: thread
#: start-up and barriers cost more than they save, and on a loaded machine
#: (more runnable threads than cores) OpenMP barriers can make a small solve
#: 100x slower (measured: a 160 x 300 ridge CV took 14.5 s on two threads
#: against 0.11 s on one; 7 x 300-target variance partitioning 28 s against 9 s).
SMALL_WORK_FLOPS = 2e10


_CONTROLLER: list = []  # [(number of imported modules, ThreadpoolController)]


def _blas_controller() -> Any:
    """A ``threadpoolctl.ThreadpoolController``, built once and reused.

    Building one scans every loaded shared library (about 4 ms, which the
    thousands of small solves of a two-band study paid at every
    ``threadpool_limits``); limiting through a built one takes microseconds.
    It is rebuilt when modules were imported since (a new import is how a new
    BLAS gets loaded); scipy.linalg and torch, which bring their own, are
    imported first.
    """
    _torch()
    if not _CONTROLLER or _CONTROLLER[0][0] != len(sys.modules):
        _CONTROLLER[:] = [(len(sys.modules), ThreadpoolController())]
    return _CONTROLLER[0][1]


class thread_limit:
    """Context manager: run torch and the BLAS libraries with ``n`` threads (None: unchanged).

    Both are limited together, since numpy's BLAS threads spinning next to
    torch's OpenMP threads (or the reverse) oversubscribe the cores.
    """

    def __init__(self, backend: Backend | None, n: int | None):
        self.backend = backend
        self.n = n
        self._old = None
        self._ctl = None

    # The BLAS limit is set first and restored first: an OpenMP-built OpenBLAS
    # sets the calling thread's OpenMP team size, which torch also reads, so
    # the other order left torch on the limited count after the block.
    def __enter__(self) -> "thread_limit":
        if self.n is None:
            return self
        torch = _torch()
        if torch is not None:
            self._old = torch.get_num_threads()
        self._ctl = _blas_controller().limit(limits=self.n, user_api="blas")
        if torch is not None:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._ctl is not None:
            self._ctl.restore_original_limits()
        if self._old is not None:
            _torch().set_num_threads(self._old)


def current_threads() -> int:
    """Threads compute may use now: torch's intra-op setting (kept equal to the
    BLAS limit by :class:`thread_limit` and the pipeline)."""
    torch = _torch()
    return int(torch.get_num_threads()) if torch is not None else (os.cpu_count() or 1)


def pin_thread_to_one() -> None:
    """Make compute called from the current (worker) thread single-threaded.

    torch's setting reaches this thread's OpenMP team size, which a new
    thread does not inherit from the one that changed it.
    """
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(1)


def serial_eigh(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.linalg.eigh`` of a numpy matrix, on one thread up to :data:`EIGH_SERIAL_MAX` rows.

    The same policy as :meth:`Backend.eigh`, for kernels that work on numpy
    arrays directly (measured in an Alice run on the loaded 2-core machine:
    a 290 x 290 float64 eigh took 137-245 ms on two threads, 12-30 ms on one).
    """
    with thread_limit(None, 1 if G.shape[-1] <= EIGH_SERIAL_MAX else None):
        return np.linalg.eigh(G)


def threads_for(flops: float) -> int | None:
    """One thread for small work, else the process's current setting (None)."""
    return 1 if flops < SMALL_WORK_FLOPS else None
