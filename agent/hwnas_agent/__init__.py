"""hwnas-agent: what runs on the device. Times ONNX and ORT-format model files with hwnas's timing policy and
reports the device's fingerprint, over an authenticated socket (``hwnas-agent serve``) or from an offline bundle
(``hwnas-agent run``). Needs only onnxruntime and numpy: no torch, nothing of hwnas."""
__version__ = "0.1.0"
PROTOCOL = 1  # bumped when a message changes meaning; both sides refuse another
FEATURES = ("pair",)  # what this agent does beyond protocol 1's first release: a client asks before relying on it
