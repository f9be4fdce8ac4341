"""Remaining useful life on NASA C-MAPSS: a 1D-CNN (or GRU) over windows of regime-normalised sensors.

``data.py`` (parsing, regimes, normalisation, windows) and ``predict.py`` use numpy/pandas only, so
prediction runs ONNX Runtime without torch.
"""
