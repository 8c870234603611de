"""Ground truth on synthetic activations with known features (sae-lens synthetic).

A run-level family: it evaluates no SAE of the run. SAEs of several architectures are
trained on activations built from known feature directions and scored by MMCS and
Hungarian-matched correlation beside a random-init control (see
:mod:`interpscore.subjects.synthetic`). Each architecture's result is one row of the
report's ``ground_truth`` list.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from interpscore.results.formatting import fmt
from interpscore.subjects.synthetic import RECIPES, SyntheticSettings, SyntheticWorld
from interpscore.suites.base import MetricSpec, RunContext, Suite

UNIT = (0.0, 1.0)


class GroundTruthSuite(Suite):
    name = "ground_truth"
    description = "Feature recovery on synthetic activations with known features"
    settings_type = SyntheticSettings
    per_sae = False
    architectures = tuple(RECIPES)
    metrics = (
        MetricSpec(
            "mmcs",
            "mean over true features of the max cosine with any decoder row",
            bounds=UNIT,
            ci_unit=None,
        ),
        MetricSpec(
            "matched_correlation",
            "mean |cos| of the Hungarian matching of latents and true features",
            bounds=UNIT,
            ci_unit=None,
        ),
    )

    def prepare_run(self, ctx: RunContext) -> SyntheticWorld:
        settings: SyntheticSettings = ctx.suite_settings(self.name)
        world_settings = dataclasses.replace(settings, seed=ctx.settings.seed)
        return SyntheticWorld(world_settings, store=ctx.settings.value_cache())

    def settings_dict(self, settings: Any) -> dict[str, Any]:
        return {}  # recorded with each result row instead

    def markdown(self, report: dict[str, Any]) -> list[str]:
        results = report.get(self.name) or []
        if not results:
            return []
        s = results[0]["settings"]
        lines = [
            "",
            "## Ground truth (synthetic features)",
            "",
            f"{s['n_features']} known features in {s['hidden_dim']} dimensions, correlated "
            f"sparse firing (sae-lens synthetic); SAEs of width {s['d_sae']} trained on "
            f"{s['training_samples']:,} samples. Control: random-init SAE of the same shape.",
            "",
            "| architecture | MMCS | matched corr. | explained variance | L0 (true) | dead | "
            "control MMCS | control matched corr. |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in results:
            c = r["control"]
            lines.append(
                f"| {r['architecture']} | {fmt(r['mmcs'])} | {fmt(r['matched_correlation'])} | "
                f"{fmt(r['explained_variance'])} | {fmt(r['l0'], 2)} ({fmt(r['true_l0'], 2)}) | "
                f"{fmt(r['dead_fraction'])} | {fmt(c['mmcs'])} | "
                f"{fmt(c['matched_correlation'])} |"
            )
        return lines
