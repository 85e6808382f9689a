"""Weights into the torch models: mmdet/arcface_torch checkpoints, ONNX files imported by graph order (proven), seeded weights."""
