"""Test data built in code: hand-made ONNX graphs, official-layout files made from seeded
models, a custom SCRFD config. Real files come from ../shared/fixtures (tests/conftest.py)."""
