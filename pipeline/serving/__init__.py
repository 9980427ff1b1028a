"""Serving: the compiled program as one MLflow pyfunc model (`pipeline/serving/model.py`, logged as code)."""
