"""InterpScore: a pytest-native evaluation harness for sparse autoencoders."""

from interpscore.formula import BUILTIN, Formula, get_formula, l0_score, score

__version__ = "0.1.0"
__all__ = ["BUILTIN", "Formula", "__version__", "get_formula", "l0_score", "score"]
