"""First-letter feature absorption (SAEBench's definition, with its pitfalls fixed).

Not applicable, with the measured probe F1 per letter, when the model does not know
first letters well enough at the hook (fewer than 20 letters with probe F1 > 0.6).
"""

from __future__ import annotations

import pytest

from interpscore.suites import metric_names


@pytest.mark.parametrize("metric", metric_names("absorption"))
def test_absorption(metric, measure):
    measure(metric)
