"""Exporting Graphs to other formats: ``export_onnx`` (the ``export`` extra)."""

from __future__ import annotations

from deeplearn.export.onnx import export_onnx

__all__ = ["export_onnx"]
