"""Base: the lowest layer (errors, atomic writes, trusted paths, progress, environment, ONNX graph helpers);
it imports nothing of ours above it."""
