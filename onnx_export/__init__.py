"""Offline model tooling: HF token classifiers to ONNX model bundles (needs torch)."""
