"""SFAI models: one package per family over a shared base (training loop, ONNX export, tracking, registry).

Importing ``models`` or ``models.registry`` does not import torch; the families' training modules do.
"""
