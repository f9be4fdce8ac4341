"""Machine-failure risk on AI4I 2020: an MLP over physics features, with the likely failure mode.

``train.py`` imports torch; ``features.py`` and ``predict.py`` use pandas and numpy only, so serving and
``sfai predict`` run ONNX Runtime without torch.
"""
