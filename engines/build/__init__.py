"""Artifacts built from an exported ONNX: its FP16 conversion and TensorRT engines."""
