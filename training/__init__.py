"""Model core: data, model, training, evaluation, Grad-CAM and prediction.

Importing this package is cheap; torch is imported only by the modules that need it.
"""
