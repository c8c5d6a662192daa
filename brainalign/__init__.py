"""brainalign: how well each layer of a language model lines up with the brain."""
from ._version import __version__


def __getattr__(name):  # lazy: `import brainalign` stays light
    if name in ("align_model", "AlignmentResult"):
        from .pipeline import api, result

        return getattr(api, name) if name == "align_model" else result.AlignmentResult
    raise AttributeError(f"module 'brainalign' has no attribute {name!r}")
