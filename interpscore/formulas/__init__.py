"""Formula files shipped with interpscore: proposals users may name, never the default.

Each ``<version>.toml`` here is read by :func:`interpscore.formula.get_formula` when its
version is named (``--formula 0.0.2-controls``), through the same validating loader as a
user's file.
"""
