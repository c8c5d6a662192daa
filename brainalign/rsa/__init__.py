"""brainalign.rsa."""
