"""brainalign.pipeline: configuration, align_model, plans and executors, outputs, reports.

Public names: :func:`align_model`, :class:`AlignmentResult`, :func:`load_config`,
:func:`run_study`, :func:`run_group`, :func:`simulate_bids` (imported lazily).
"""
_NAMES = {
    "align_model": "api", "AlignmentResult": "result", "load_config": "config", "validate_config": "config",
    "PipelineConfig": "config", "run_study": "plan", "run_group": "group", "simulate_bids": "simulate",
}


def __getattr__(name):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'brainalign.pipeline' has no attribute {name!r}")


__all__ = list(_NAMES)
