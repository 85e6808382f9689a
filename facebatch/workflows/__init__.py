"""Workflows that turn artifacts into artifacts, each proven before it publishes: convert (FP16), quantize (INT8), build
(TensorRT), fix (graph surgery), release (every gate into one folder)."""
