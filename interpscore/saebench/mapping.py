"""Which of our metrics fills which SAEBench field, and how the definitions compare.

One table serves both directions: :mod:`interpscore.saebench.export` reads it to write
SAEBench files from a report, :mod:`interpscore.saebench.importer` reads it backwards to
bring SAEBench numbers into a report, using only fields marked ``same`` (the definitions
agree, up to the token handling each field's note states).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from interpscore.saebench.schema import CORE_FIELDS, SPARSE_PROBING_K, TPP_N

Entry = dict[str, Any]

SPECIAL_TOKENS = (
    "special tokens (BOS) keep their clean activations in both the SAE pass and the "
    "zero-ablation pass; SAEBench zero-ablates them in the ablation pass only, which "
    "inflates its score"
)
BUNDLED_TASKS = "SAEBench's procedure on this run's probing tasks, not SAEBench's datasets"


@dataclass(frozen=True)
class Field:
    """One SAEBench metric field and where its value comes from in our report."""

    eval_type: str
    path: str
    #: Our metric; ``detail`` names a key of its ``details`` instead of its value.
    metric: str
    detail: str | None = None
    #: True when the definitions agree (then an import fills ``metric`` from this field).
    same: bool = True
    note: str | None = None
    #: For derived values (standard deviations over letters, token counts).
    derive: Callable[[Entry], float | int | None] | None = None

    @property
    def source(self) -> str:
        if self.derive is not None:
            return f"{self.metric} (derived: {self.note})"
        return f"{self.metric}.details.{self.detail}" if self.detail else self.metric

    def read(self, entry: Entry) -> float | int | None:
        """This field's value from a report entry; None when the report lacks it."""
        if self.derive is not None:
            return self.derive(entry)
        metric = passed(entry, self.metric)
        if metric is None:
            return None
        value = metric.get("details", {}).get(self.detail) if self.detail else metric["value"]
        return value if finite(value) else None


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def passed(entry: Entry, name: str) -> dict[str, Any] | None:
    """A metric of a report entry that was measured (status passed, finite value)."""
    metric = (entry.get("metrics") or {}).get(name)
    if not metric or metric.get("status") != "passed" or not finite(metric.get("value")):
        return None
    return metric


def _window_tokens(entry: Entry) -> int | None:
    metric = passed(entry, "l0")
    window = (metric or {}).get("window") or {}
    tokens = window.get("n_tokens")
    return int(tokens) if isinstance(tokens, (int, float)) else None


def _letter_stdev(key: str) -> Callable[[Entry], float | None]:
    """Sample standard deviation over qualifying letters (SAEBench's ``statistics.stdev``)."""

    def read(entry: Entry) -> float | None:
        metric = passed(entry, "absorption")
        if metric is None:
            return None
        details = metric.get("details", {})
        letters = details.get("qualifying_letters") or []
        per_letter = details.get("per_letter") or {}
        values = [
            len(per_letter[c]["main_latents"]) if key == "split" else per_letter[c][key]
            for c in letters
            if c in per_letter
        ]
        return statistics.stdev(values) if len(values) >= 2 else None

    return read


def _autointerp_stdev(entry: Entry) -> float | None:
    metric = passed(entry, "autointerp_saebench")
    if metric is None:
        return None
    scores = [v for v in metric.get("details", {}).get("per_latent", []) if finite(v)]
    return statistics.stdev(scores) if len(scores) >= 2 else None


def _core() -> list[Field]:
    def f(path: str, metric: str, detail: str | None = None, **kw: Any) -> Field:
        return Field("core", path, metric, detail, **kw)

    return [
        f("model_behavior_preservation.kl_div_score", "kl_div_score", note=SPECIAL_TOKENS),
        f("model_behavior_preservation.kl_div_with_ablation", "kl_div_with_ablation",
          note=SPECIAL_TOKENS),
        f("model_behavior_preservation.kl_div_with_sae", "kl_div_with_sae"),
        f("model_performance_preservation.ce_loss_score", "ce_loss_score", note=SPECIAL_TOKENS),
        f("model_performance_preservation.ce_loss_with_ablation", "ce_loss_with_ablation",
          note=SPECIAL_TOKENS),
        f("model_performance_preservation.ce_loss_with_sae", "ce_loss_with_sae"),
        f("model_performance_preservation.ce_loss_without_sae", "ce_loss_clean"),
        f("reconstruction_quality.explained_variance", "explained_variance", same=False,
          note="ours is 1 − Σ‖x−x̂‖²/Σ‖x−x̄‖² with x̄ the mean over all evaluation tokens; "
          "SAEBench's current explained_variance uses a malformed total variance (reads "
          "high), so the two are not comparable"),
        f("reconstruction_quality.explained_variance_legacy", "explained_variance_legacy",
          note="the per-token mean about each batch's mean, as SAEBench; depends on the batch "
          "size (batch_size_prompts)"),
        f("reconstruction_quality.mse", "mse_per_token", same=False,
          note="ours is the mean over tokens of ‖x−x̂‖² (mse_per_token); SAEBench divides "
          "that again by the batch's token count, so the two are not comparable"),
        f("reconstruction_quality.cossim", "cossim"),
        f("shrinkage.l2_norm_in", "l2_ratio", "l2_norm_in"),
        f("shrinkage.l2_norm_out", "l2_ratio", "l2_norm_out"),
        f("shrinkage.l2_ratio", "l2_ratio"),
        f("shrinkage.relative_reconstruction_bias", "relative_reconstruction_bias"),
        f("sparsity.l0", "l0"),
        f("sparsity.l1", "l1", note="Σ|f| per token; equal to SAEBench's Σf for non-negative "
          "activations"),
        f("token_stats.total_tokens_eval_reconstruction", "l0", derive=_window_tokens,
          note="the tokens of the evaluation window"),
        f("token_stats.total_tokens_eval_sparsity_variance", "l0", derive=_window_tokens,
          note="the tokens of the evaluation window (one window serves every core metric)"),
        *(
            f(f"misc_metrics.{name}", "alive", name)  # the companions in alive's details
            for name in CORE_FIELDS["misc_metrics"]
            if name != "frac_alive"
        ),
        f("misc_metrics.frac_alive", "alive",
          note="latents firing at least once on the evaluation window (see token_stats)"),
    ]  # fmt: skip


def _sparse_probing() -> list[Field]:
    fields = [
        Field(
            "sparse_probing",
            "llm.llm_test_accuracy",
            "sparse_probing_k1",
            "llm_dense_accuracy",
            note="probe C chosen on validation (SAEBench keeps its probe's best test "
            f"epoch); {BUNDLED_TASKS}",
        )
    ]
    for k in SPARSE_PROBING_K:
        metric = f"sparse_probing_k{k}"
        fields.append(
            Field("sparse_probing", f"llm.llm_top_{k}_test_accuracy", metric,
                  "llm_reference_accuracy", note=BUNDLED_TASKS)
        )  # fmt: skip
        fields.append(
            Field("sparse_probing", f"sae.sae_top_{k}_test_accuracy", metric, note=BUNDLED_TASKS)
        )
    return fields


def _tpp() -> list[Field]:
    note = (
        "SAEBench's TPP formula; class probes are sklearn logistic regressions with C chosen "
        f"on validation (SAEBench trains torch probes); {BUNDLED_TASKS}"
    )
    fields = []
    for n in TPP_N:
        metric = f"tpp_saebench@{n}"
        prefix = f"tpp_metrics.tpp_threshold_{n}"
        fields += [
            Field("tpp", f"{prefix}_total_metric", metric, note=note),
            Field("tpp", f"{prefix}_intended_diff_only", metric, "intended", note=note),
            Field("tpp", f"{prefix}_unintended_diff_only", metric, "unintended", note=note),
        ]
    return fields


def _absorption() -> list[Field]:
    note = "SAEBench's first-letter method on this run's word list and probe settings"
    stdev = "sample standard deviation over qualifying letters, as SAEBench"
    a = "absorption_first_letter"
    return [
        Field(a, "mean.mean_absorption_fraction_score", "absorption", note=note),
        Field(a, "mean.mean_full_absorption_score", "absorption_full_rate", note=note),
        Field(a, "mean.mean_num_split_features", "absorption_split_latents", note=note),
        Field(a, "mean.std_dev_absorption_fraction_score", "absorption", same=False,
              note=stdev, derive=_letter_stdev("absorption_fraction")),
        Field(a, "mean.std_dev_full_absorption_score", "absorption_full_rate", same=False,
              note=stdev, derive=_letter_stdev("full_absorption_rate")),
        Field(a, "mean.std_dev_num_split_features", "absorption_split_latents", same=False,
              note=stdev, derive=_letter_stdev("split")),
    ]  # fmt: skip


def _autointerp() -> list[Field]:
    note = (
        "SAEBench's 14-example accuracy with this run's explainer and scorer models "
        "(SAEBench uses gpt-4o-mini): compare only scores made with the same scorer"
    )
    return [
        Field("autointerp", "autointerp.autointerp_score", "autointerp_saebench", note=note),
        Field(
            "autointerp",
            "autointerp.autointerp_std_dev",
            "autointerp_saebench",
            same=False,
            note="sample standard deviation over latents, as SAEBench",
            derive=_autointerp_stdev,
        ),
    ]


FIELDS: list[Field] = [*_core(), *_sparse_probing(), *_tpp(), *_absorption(), *_autointerp()]


def fields_of(eval_type: str) -> list[Field]:
    return [f for f in FIELDS if f.eval_type == eval_type]
