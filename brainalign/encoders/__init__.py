"""brainalign.encoders."""
