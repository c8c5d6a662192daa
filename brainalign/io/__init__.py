"""brainalign.io."""
