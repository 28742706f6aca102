"""hwnas: hardware-aware neural architecture search.

Profile your device into a latency lookup table, search a MobileNetV3-style
space under your latency budget, and ship an ONNX model whose latency was
measured, not guessed.
"""
__version__ = "0.1.0"
