"""brainalign: how well each layer of a language model lines up with the brain."""
__version__ = "0.1.0"
