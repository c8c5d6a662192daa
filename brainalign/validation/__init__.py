"""Validation studies on real recordings and simulations (issue 7)."""
