"""InterpScore: a pytest-native evaluation harness for sparse autoencoders."""

from interpscore.formula import BUILTIN, Formula, get_formula, score
from interpscore.metrics.l0 import l0_score

__version__ = "0.1.0"
__all__ = ["BUILTIN", "Formula", "__version__", "get_formula", "l0_score", "score"]
