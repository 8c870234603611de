"""The benchmark modules: one per metric family, each test records one metric of one SAE.

Installed as ``interpscore.benchmarks``, so ``pytest --pyargs interpscore.benchmarks`` runs
them from any directory; in a checkout ``pytest benchmarks`` runs the same files.
"""
