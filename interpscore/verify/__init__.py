"""``interpscore verify``: re-run the evaluation a report names and check it value by value.

:mod:`~interpscore.verify.run_options` turns a run block back into pytest options,
:mod:`~interpscore.verify.rerun` runs the real benchmarks in a subprocess,
:mod:`~interpscore.verify.compare` compares two SAE entries (pure), and
:mod:`~interpscore.verify.command` is the command-line glue.
"""
