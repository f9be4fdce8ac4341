"""Energy module: day-ahead p10/p50/p90 forecasts of 15-minute kWh (DAEWOO steel plant), with CO2.

``calendar`` and ``features`` (numpy/pandas only) are shared by ``train`` (torch) and ``predict`` (ONNX Runtime).
"""
