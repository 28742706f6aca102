"""Constrained multi-objective search over a space, with a run store and resume."""
from hwnas.search.problem import Constraints, Problem
from hwnas.search.records import SearchRecord
from hwnas.search.run import InfeasibleBudgetError, SearchConfig, SearchResult, run_search
from hwnas.search.strategies import create_strategy, list_strategies

__all__ = ["Constraints", "InfeasibleBudgetError", "Problem", "SearchConfig", "SearchRecord", "SearchResult", "create_strategy",
           "list_strategies", "run_search"]
