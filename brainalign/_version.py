"""The package version, in a module of its own so that any module may import it
without importing the ``brainalign`` facade (which lazily imports the pipeline)."""

__version__ = "0.1.0"
