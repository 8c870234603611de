"""Running one evaluation on many devices and machines, on engines users already run.

* :mod:`.plan`: what is known of an SAE before it loads (model, hook, widths), its expected
  cost, deterministic cost-balanced shards (``--shard I/N``) and the (model, hook) groups
  that pytest-xdist workers take whole;
* :mod:`.store`: the shared results directory: one file per SAE, written atomically, with
  the fingerprint of the settings that made it (local folders or fsspec URLs);
* :mod:`.merge`: ``interpscore merge``: one report from results directories;
* :mod:`.launch`: ``interpscore launch``: the shards as submitit jobs (Slurm or local).

The pytest wiring lives in :mod:`interpscore.pytest_plugin.distribution`.
"""
