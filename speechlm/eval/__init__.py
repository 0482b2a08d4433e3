"""Evaluation metrics and harnesses."""
