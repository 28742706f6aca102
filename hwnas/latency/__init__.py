"""Latency from a lookup table: the LUT file format and the predictor of a network's latency from it."""
