"""Measuring on a device: isolated fresh-process timing, stability rules, LUT building, calibration, drift, fidelity, pairing and offline bundles."""
