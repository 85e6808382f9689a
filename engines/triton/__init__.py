"""Triton Inference Server: the model repository writer, the python-backend models, server control."""
