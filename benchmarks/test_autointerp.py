"""Autointerp: a seeded sample of each SAE's alive latents explained by a language model and
scored by detection, fuzzing, surprisal, embedding and SAEBench's protocol, beside a
shuffled-explanation null, a top-tokens explanation and the SAE's controls."""

from __future__ import annotations

import pytest

from interpscore.suites import metric_names


@pytest.mark.parametrize("metric", metric_names("autointerp"))
def test_autointerp(metric, measure):
    measure(metric)
