"""Quality module: wafer defect probability on SECOM (590 process measurements per wafer).

``features`` (numpy/pandas only) is shared by ``train`` (torch) and ``predict`` (ONNX Runtime only).
"""
