"""Running a registered sedwatt model: audio file paths in, DCASE events out.

``inference`` does the work with the training and evaluation code (audio reading, log-mel, CRNN,
the recipe's decoding); ``pyfunc`` wraps it as an MLflow ``python_function`` model saved beside the
PyTorch flavour, so ``mlflow.pyfunc.load_model``, ``mlflow models predict`` and ``mlflow models
serve`` run it. Importing this package imports neither torch nor MLflow.
"""
