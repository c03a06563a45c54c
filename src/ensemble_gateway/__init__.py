"""Ensemble Gateway: ML models and ensembles of models behind one asynchronous API on AWS."""

__version__ = "0.1.0"
