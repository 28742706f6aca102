"""Accuracy evaluators behind one interface, chosen by name (``proxy:synflow``, …)."""
from hwnas.evaluate.base import CachedEvaluator, Evaluator, create_evaluator, list_evaluators, register_evaluator

__all__ = ["CachedEvaluator", "Evaluator", "create_evaluator", "list_evaluators", "register_evaluator"]
