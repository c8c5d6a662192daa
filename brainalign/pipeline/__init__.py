"""brainalign.pipeline."""
