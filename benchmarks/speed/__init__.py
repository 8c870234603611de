"""Speed benchmarks, run on demand (``pytest benchmarks/speed --speed``), never in the main
job: the shared pass against SAELens' ``run_evals`` (see the README, "Speed against
SAELens")."""
