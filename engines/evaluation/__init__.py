"""Evaluation: do two runs find the same faces, how many labelled faces a run keeps (used by bench, verify and the
workflows alike)."""
