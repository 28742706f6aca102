"""Search spaces: the space protocol, its kinds (the MobileNetV3 macro space, NAS-Bench-201-style cells) and the PyTorch blocks they build."""
