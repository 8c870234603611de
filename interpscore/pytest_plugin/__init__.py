"""The InterpScore pytest plugin (entry point ``pytest11: interpscore``). It wires; it does
not compute.

* :mod:`.options`: the option group (the run's options, every registered suite's, the
  report's and the gate's), validated while the command line is parsed;
* :mod:`.fixtures`: ``--sae`` values parametrize the session-scoped ``sae_id``; the
  ``evaluator``, ``sae``, ``measure`` and ``record_run_result`` fixtures;
* :mod:`.scheduling`: pytest-xdist: one worker per device (``--devices``), each (model,
  hook) group's tests to one worker;
* :mod:`.distribution`: ``--shard``, ``--results-dir`` and ``--force``: cost-balanced
  shards, per-SAE results files and resume;
* :mod:`.speed`: speed benchmarks (marker ``speed``) only with ``--speed``;
* :mod:`.reporting`: records from every test report (xdist workers included) become
  ``interpscore.json``, ``interpscore.md`` and a figure at session end, and the gate runs.
"""

pytest_plugins = [  # each after the modules it imports (so that pytest can rewrite them)
    "interpscore.pytest_plugin.options",
    "interpscore.pytest_plugin.reporting",
    "interpscore.pytest_plugin.scheduling",
    "interpscore.pytest_plugin.distribution",
    "interpscore.pytest_plugin.speed",
    "interpscore.pytest_plugin.fixtures",
]
