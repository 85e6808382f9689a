"""Runners: one protocol (``base.Runner``) for every runtime; each runtime one module."""
