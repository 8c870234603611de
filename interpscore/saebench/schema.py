"""SAEBench's result-file format: eval types, folders, metric paths, and a checker.

Written from SAEBench's published JSON schemas (``sae_bench/evals/*/eval_output_schema_*.json``
at SAEBench 0.6.0): every file has the same envelope, and each eval type's
``eval_result_metrics`` has categories whose fields are either required numbers or
optional numbers (``null`` allowed). :func:`check` returns the problems of one file, each
naming the key, so a file we write can be tested against the format and a file we read
can be refused with a precise message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: SAEBench version whose schemas this module follows.
SCHEMA_VERSION = "SAEBench 0.6.0"

#: Envelope keys SAEBench requires, and the JSON types each may take.
ENVELOPE: dict[str, tuple[type | None, ...]] = {
    "eval_config": (dict,),
    "eval_id": (str,),
    "datetime_epoch_millis": (int,),
    "eval_result_metrics": (dict,),
    "sae_bench_commit_hash": (str,),
    "sae_lens_id": (str, None),
    "sae_lens_release_id": (str, None),
    "sae_lens_version": (str, None),
    "sae_cfg_dict": (dict, None),
}
OPTIONAL_ENVELOPE: dict[str, tuple[type | None, ...]] = {
    "eval_type_id": (str,),
    "eval_result_details": (list,),
}

SPARSE_PROBING_K = (1, 2, 5, 10, 20, 50, 100)
TPP_N = (2, 5, 10, 20, 50, 100, 500)


@dataclass(frozen=True)
class EvalType:
    """One SAEBench eval: its id, its output folder, and its metric fields."""

    id: str
    folder: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def categories(self) -> set[str]:
        return {path.split(".", 1)[0] for path in self.required + self.optional}


def _paths(category: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{category}.{name}" for name in names)


CORE_FIELDS = {
    "model_behavior_preservation": ("kl_div_score", "kl_div_with_ablation", "kl_div_with_sae"),
    "model_performance_preservation": (
        "ce_loss_score",
        "ce_loss_with_ablation",
        "ce_loss_with_sae",
        "ce_loss_without_sae",
    ),
    "reconstruction_quality": ("explained_variance", "explained_variance_legacy", "mse", "cossim"),
    "shrinkage": ("l2_norm_in", "l2_norm_out", "l2_ratio", "relative_reconstruction_bias"),
    "sparsity": ("l0", "l1"),
    "token_stats": ("total_tokens_eval_reconstruction", "total_tokens_eval_sparsity_variance"),
    "misc_metrics": (
        "freq_over_1_percent",
        "freq_over_10_percent",
        "normalized_freq_over_1_percent",
        "normalized_freq_over_10_percent",
        "average_max_encoder_cosine_sim",
        "average_max_decoder_cosine_sim",
        "frac_alive",
    ),
}
ABSORPTION_FIELDS = (
    "mean_absorption_fraction_score",
    "mean_full_absorption_score",
    "mean_num_split_features",
    "std_dev_absorption_fraction_score",
    "std_dev_full_absorption_score",
    "std_dev_num_split_features",
)
TPP_PARTS = ("total_metric", "intended_diff_only", "unintended_diff_only")

EVAL_TYPES: dict[str, EvalType] = {
    e.id: e
    for e in (
        EvalType(
            "core",
            "core",
            tuple(path for cat, names in CORE_FIELDS.items() for path in _paths(cat, *names)),
        ),
        EvalType(
            "sparse_probing",
            "sparse_probing",
            ("llm.llm_test_accuracy",),
            (
                *(f"llm.llm_top_{k}_test_accuracy" for k in SPARSE_PROBING_K),
                "sae.sae_test_accuracy",
                *(f"sae.sae_top_{k}_test_accuracy" for k in SPARSE_PROBING_K),
            ),
        ),
        EvalType(
            "tpp",
            "tpp",
            (),
            tuple(f"tpp_metrics.tpp_threshold_{n}_{part}" for n in TPP_N for part in TPP_PARTS),
        ),
        EvalType("absorption_first_letter", "absorption", _paths("mean", *ABSORPTION_FIELDS)),
        EvalType(
            "autointerp",
            "autointerp",
            ("autointerp.autointerp_score", "autointerp.autointerp_std_dev"),
        ),
    )
}

#: Integer-valued fields (the schemas type them ``integer``).
INTEGER_PATHS = frozenset(
    {
        "token_stats.total_tokens_eval_reconstruction",
        "token_stats.total_tokens_eval_sparsity_variance",
    }
)


def get_path(tree: Any, path: str) -> Any:
    """``tree["a"]["b"]`` for ``"a.b"``; KeyError naming the missing part."""
    node = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _type_ok(value: Any, allowed: tuple[type | None, ...]) -> bool:
    for kind in allowed:
        if kind is None and value is None:
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind in (str, dict, list) and isinstance(value, kind):
            return True
    return False


def _number_ok(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, (int, float))


def _walk(tree: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _walk(value, path + ".")
        else:
            yield path


def check(doc: Any, eval_type: EvalType) -> list[str]:
    """Every way ``doc`` breaks SAEBench's schema for ``eval_type`` (empty: it conforms)."""
    if not isinstance(doc, dict):
        return ["the file is not a JSON object"]
    problems = []
    for key, allowed in ENVELOPE.items():
        if key not in doc:
            problems.append(f"missing key {key}")
        elif not _type_ok(doc[key], allowed):
            problems.append(f"key {key} has the wrong type ({type(doc[key]).__name__})")
    for key, allowed in OPTIONAL_ENVELOPE.items():
        if key in doc and not _type_ok(doc[key], allowed):
            problems.append(f"key {key} has the wrong type ({type(doc[key]).__name__})")
    metrics = doc.get("eval_result_metrics")
    if not isinstance(metrics, dict):
        return problems
    for path in eval_type.required:
        try:
            value = get_path(metrics, path)
        except KeyError:
            problems.append(f"missing key eval_result_metrics.{path}")
            continue
        if not _number_ok(value, path in INTEGER_PATHS):
            problems.append(f"key eval_result_metrics.{path} is {value!r}, not a number")
    for path in eval_type.optional:
        try:
            value = get_path(metrics, path)
        except KeyError:
            continue
        if value is not None and not _number_ok(value, False):
            problems.append(f"key eval_result_metrics.{path} is {value!r}, not a number or null")
    for category in eval_type.categories:
        if category not in metrics:
            problems.append(f"missing key eval_result_metrics.{category}")
    return problems


def known_paths(eval_type: EvalType) -> set[str]:
    return set(eval_type.required) | set(eval_type.optional)


def unknown_paths(doc: dict[str, Any], eval_type: EvalType) -> list[str]:
    """Metric paths in a file that the eval type's schema does not name."""
    return sorted(set(_walk(doc.get("eval_result_metrics") or {})) - known_paths(eval_type))
