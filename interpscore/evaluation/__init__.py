"""Evaluation: run settings (:mod:`.settings`), the shared language-model pass with the
suites' accumulators (:mod:`.shared_pass`), and the evaluator that groups SAEs by
(model, hook), dispatches to the suites and compares with controls (:mod:`.evaluator`).

Nothing is imported here: the suites import the pass, and the evaluator imports the suites.
"""
