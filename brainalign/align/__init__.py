"""brainalign.align."""
