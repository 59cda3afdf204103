"""Deployment: export a trained network (ONNX, TorchScript, torch.export) and verify the file,
and measure what a network costs (parameters, MACs, ONNX Runtime latency)."""

from sakd.deploy.cost import count_macs, count_params, onnx_latency_ms
from sakd.deploy.export import EXPORTERS, Exported, ExportMismatchError, export_model

__all__ = [
    "EXPORTERS",
    "ExportMismatchError",
    "Exported",
    "count_macs",
    "count_params",
    "export_model",
    "onnx_latency_ms",
]
