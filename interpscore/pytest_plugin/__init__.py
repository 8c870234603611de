"""The InterpScore pytest plugin (entry point ``pytest11: interpscore``). It wires; it does
not compute.

* :mod:`.options`: the option group (the run's options, every registered suite's, the
  report's and the gate's), validated while the command line is parsed;
* :mod:`.fixtures`: ``--sae`` values parametrize the session-scoped ``sae_id``; the
  ``evaluator``, ``sae``, ``measure`` and ``record_run_result`` fixtures;
* :mod:`.reporting`: records from every test report (xdist workers included) become
  ``interpscore.json``, ``interpscore.md`` and a figure at session end, and the gate runs.
"""

pytest_plugins = [
    "interpscore.pytest_plugin.options",
    "interpscore.pytest_plugin.fixtures",
    "interpscore.pytest_plugin.reporting",
]
