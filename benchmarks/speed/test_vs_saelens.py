"""Speed against SAELens: the core metrics of N zoo SAEs through our shared pass and through
SAELens' ``run_evals``, on the same model, hook, tokens and batches, in one run.

Run on demand only (marker ``speed``; deselected without ``--speed``)::

    pytest benchmarks/speed --speed [--speed-n 1,4] [--tokens 8192] --benchmark-columns=max

* **Ours** is the path a user runs for the core metrics alone (``-k core --no-controls
  --model-controls=none --bootstrap=0``, with no value cache: a first run), called
  programmatically: an :class:`~interpscore.evaluation.evaluator.Evaluator` that loads the
  model and SAEs, runs the shared pass and measures every core metric of every SAE. It is
  what pytest-benchmark times.
* **SAELens** is ``sae_lens.load_model("AutoModelForCausalLM", ...)`` (a ``HookedProxyLM``)
  on the same safetensors copy of the embedded SmolLM2 our loader converted, each SAE
  loaded with ``SAE.load_from_disk`` and ``run_evals`` with only the core metrics
  (CE, KL, L0/L1, explained variance, MSE, cosine). Its activation store is replaced by
  one that hands out *our* token window's rows in order, batch by batch, so that both
  sides read exactly the same tokens (and its special-token list is ours).

N = 1..5 are the zoo's trained SAEs on ``blocks.15.hook_resid_post``; beyond that,
random-init SAEs of the same classes and shape (seeded, saved beside the test) fill in, so
that every SAE is on the same model and hook. Seconds, the ratio, the forward calls of each
kind, the forward-pass bound and the value comparison go into ``benchmark.extra_info``
(``--benchmark-json`` writes them) and are printed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from interpscore.evaluation.evaluator import Evaluator
from interpscore.pytest_plugin.options import SETTINGS
from interpscore.subjects.controls import random_init_like
from interpscore.subjects.loading import SAESpec, load_sae, parse_sae_spec
from interpscore.subjects.models import ALIASES, alias_gguf_path, cache_root, sha256_file
from interpscore.subjects.tokens import special_ids
from interpscore.subjects.zoo import zoo_specs
from interpscore.suites import metric_names

pytestmark = pytest.mark.speed

N_VALUES = (1, 4, 10)
MODEL = "smollm2-135m"
HOOK = "blocks.15.hook_resid_post"
#: Our metric name -> SAELens' (metric group, key), where both compute the metric.
PAIRS = {
    "ce_loss_clean": ("model_performance_preservation", "ce_loss_without_sae"),
    "ce_loss_with_sae": ("model_performance_preservation", "ce_loss_with_sae"),
    "ce_loss_with_ablation": ("model_performance_preservation", "ce_loss_with_ablation"),
    "ce_loss_score": ("model_performance_preservation", "ce_loss_score"),
    "kl_div_with_sae": ("model_behavior_preservation", "kl_div_with_sae"),
    "kl_div_with_ablation": ("model_behavior_preservation", "kl_div_with_ablation"),
    "kl_div_score": ("model_behavior_preservation", "kl_div_score"),
    "l0": ("sparsity", "l0"),
    "l1": ("sparsity", "l1"),
    "explained_variance": ("reconstruction_quality", "explained_variance"),
    "explained_variance_legacy": ("reconstruction_quality", "explained_variance_legacy"),
    "mse_per_token": ("reconstruction_quality", "mse"),
    "cossim": ("reconstruction_quality", "cossim"),
}
#: Metrics whose definitions agree when the tokens and masks are the same (asserted to 1e-3,
#: relative for the losses). The ablation terms and the two scores built on them differ:
#: SAELens zeroes the hook at every position, BOS and separators included, we only where the
#: SAE is spliced in (see the README, "Speed against SAELens").
AGREE = (
    "ce_loss_clean",
    "ce_loss_with_sae",
    "kl_div_with_sae",
    "l0",
    "l1",
    "explained_variance",
    "explained_variance_legacy",
    "mse_per_token",
    "cossim",
)
TOLERANCE = 1e-3


class WindowStore:
    """The part of SAELens' ``ActivationsStore`` that ``run_evals`` reads, serving the rows
    of our token window in order (``reset_input_dataset`` starts again from the first)."""

    def __init__(self, tokens: torch.Tensor, batch_size: int, device: str) -> None:
        self.tokens = tokens
        self.store_batch_size_prompts = batch_size
        self.context_size = int(tokens.shape[1])
        self.device = device
        self.next_row = 0

    def get_batch_tokens(self, batch_size: int | None = None) -> torch.Tensor:
        size = batch_size or self.store_batch_size_prompts
        rows = self.tokens[self.next_row : self.next_row + size]
        if rows.shape[0] == 0:
            raise RuntimeError("run_evals asked for more batches than the window holds")
        self.next_row += rows.shape[0]
        return rows.to(self.device)

    def reset_input_dataset(self) -> None:
        self.next_row = 0


class CallCounter:
    """Counts a transformers model's forward calls: full ones reach the LM head, the others
    stopped at the hook."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.started = 0
        self.full = 0
        self.handles = [
            model.register_forward_pre_hook(self._start),
            model.get_output_embeddings().register_forward_hook(self._head),
        ]

    def _start(self, *_: Any) -> None:
        self.started += 1

    def _head(self, *_: Any) -> None:
        self.full += 1

    def calls(self) -> dict[str, int]:
        return {"full": self.full, "to_hook": self.started - self.full}

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def model_directory() -> Path:
    """The safetensors copy of the embedded SmolLM2 that our loader converts once (converted
    here first when it is missing)."""
    gguf = alias_gguf_path(ALIASES[MODEL])
    target = cache_root() / "models" / f"{gguf.stem}-{sha256_file(gguf)[:12]}"
    if not (target / "model.safetensors").is_file():
        from interpscore.subjects.models import load_model

        load_model(MODEL)
    return target


def subjects(n: int, folder: Path, seed: int) -> list[SAESpec]:
    """N SAEs on SmolLM2's ``HOOK``: the zoo's trained ones, then random-init SAEs of their
    classes (seeded), each saved as a sae-lens folder that both sides load."""
    trained = [s for s in zoo_specs("none") if load_sae(s).hook_name == HOOK]
    specs = trained[:n]
    for i in range(n - len(specs)):
        base = trained[i % len(trained)]
        loaded = load_sae(base)
        target = folder / f"random-{i}-{base.id}"
        target.mkdir(parents=True, exist_ok=True)
        random_init_like(loaded.sae, seed + i).save_model(target)
        cfg = json.loads((Path(base.location) / "cfg.json").read_text())
        cfg["metadata"] = {**cfg["metadata"], "zoo_name": target.name, "random_init_seed": seed}
        (target / "cfg.json").write_text(json.dumps(cfg, indent=1))
        specs.append(parse_sae_spec(f"{target.name}={target}"))
    return specs


def run_ours(settings: Any, specs: list[SAESpec]) -> dict[str, Any]:
    """Every core metric of every SAE, as ``pytest benchmarks -k core`` measures it."""
    start, cpu = time.perf_counter(), time.process_time()
    evaluator = Evaluator(settings, specs, wanted={"core"})
    values = {
        spec.id: {m: evaluator.measure(spec.id, m).value for m in metric_names("core")}
        for spec in specs
    }
    (info,) = evaluator.passes
    group = evaluator.group(specs[0].id)
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "values": values,
        "pass": info,
        "tokens": group.window.tokens,
        "special": special_ids(group.lm.tokenizer),
        "lm": group.lm,
    }


def run_saelens(
    settings: Any, specs: list[SAESpec], tokens: torch.Tensor, special: list[int]
) -> dict[str, Any]:
    """The same SAEs through ``sae_lens.evals.run_evals`` on the same token rows."""
    from sae_lens import SAE
    from sae_lens.evals import EvalConfig, run_evals
    from sae_lens.load_model import load_model as saelens_load_model
    from sae_lens.training.activation_scaler import ActivationScaler

    layer = int(HOOK.split(".")[1])
    hf_hook = f"model.layers.{layer}"  # HookedProxyLM names modules; resid_post = its output
    start, cpu = time.perf_counter(), time.process_time()
    model = saelens_load_model(
        "AutoModelForCausalLM",
        str(model_directory()),
        device=settings.device,
        model_from_pretrained_kwargs={"dtype": getattr(torch, settings.dtype)},
        hook_names=[hf_hook],
    )
    counter = CallCounter(model.model)
    n_batches = -(-tokens.shape[0] // settings.batch_size)
    config = EvalConfig(
        batch_size_prompts=settings.batch_size,
        n_eval_reconstruction_batches=n_batches,
        compute_kl=True,
        compute_ce_loss=True,
        n_eval_sparsity_variance_batches=n_batches,
        compute_sparsity_metrics=True,
        compute_variance_metrics=True,
    )
    values, eval_seconds = {}, {}
    for spec in specs:
        sae = SAE.load_from_disk(spec.location, device=settings.device, dtype="float32")
        sae.cfg.metadata.hook_name = hf_hook
        store = WindowStore(tokens, settings.batch_size, settings.device)
        began = time.perf_counter()
        metrics, _ = run_evals(
            sae, store, model, ActivationScaler(), config, exclude_special_tokens=special
        )
        eval_seconds[spec.id] = time.perf_counter() - began
        values[spec.id] = {
            ours: metrics[group][key]
            for ours, (group, key) in PAIRS.items()
            if key in metrics.get(group, {})
        }
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    counter.remove()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "eval_seconds": eval_seconds,
        "values": values,
        "calls": counter.calls(),
    }


def layer_equivalents(lm: Any, layer: int) -> dict[str, float]:
    """Per-token multiply-adds of one decoder layer, of the LM head in layers, and the
    layer counts before and after the hook (for the cost of each kind of call)."""
    cfg = lm.model.config
    d, heads = cfg.hidden_size, cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", heads) or heads
    head_dim = getattr(cfg, "head_dim", None) or d // heads
    attention = d * (2 * heads * head_dim + 2 * kv * head_dim)
    per_layer = attention + 3 * d * cfg.intermediate_size
    return {
        "layers": lm.n_layers,
        "to_hook": layer + 1,
        "tail": lm.n_layers - layer - 1,
        "head_in_layers": d * cfg.vocab_size / per_layer,
    }


def cost(calls: dict[str, float], shape: dict[str, float]) -> float:
    """Layer-equivalents of a set of calls (a full pass = every layer + the head)."""
    full = shape["layers"] + shape["head_in_layers"]
    tail = shape["tail"] + shape["head_in_layers"]
    return (
        calls.get("full", 0) * full
        + calls.get("to_hook", 0) * shape["to_hook"]
        + (calls.get("tail", 0) * tail)
    )


@pytest.mark.parametrize("n_saes", N_VALUES, ids=[f"n{n}" for n in N_VALUES])
def test_core_metrics_against_saelens_run_evals(n_saes, benchmark, pytestconfig, tmp_path_factory):
    run = pytestconfig.stash[SETTINGS]
    # A first run's cost: no value cache (where the settings have one), nothing reused.
    no_cache = {"cache": False} if "cache" in {f.name for f in dataclasses.fields(run)} else {}
    settings = dataclasses.replace(
        run,
        controls=False,
        model_controls="none",
        bootstrap=0,
        model_override=None,
        show_progress=False,
        **no_cache,
    )
    folder = tmp_path_factory.mktemp(f"saes-n{n_saes}")
    specs = subjects(n_saes, folder, settings.seed)
    ours = benchmark.pedantic(run_ours, args=(settings, specs), rounds=1, iterations=1)
    theirs = run_saelens(settings, specs, ours["tokens"], ours["special"])
    shutil.rmtree(folder, ignore_errors=True)

    info = ours["pass"]
    n_batches = info.lm_forward_calls["clean_full"]
    shape = layer_equivalents(ours["lm"], int(HOOK.split(".")[1]))
    our_calls = {
        "full": info.lm_forward_calls.get("clean_full", 0),
        "to_hook": info.lm_forward_calls.get("to_hook", 0),
        "tail": info.lm_forward_calls.get("from_hook_zero", 0)
        + info.lm_forward_calls.get("from_hook_sae", 0),
    }
    bound = {"to_hook": n_batches, "tail": n_batches * (2 + n_saes)}  # + the clean tail
    our_cost, bound_cost, their_cost = (
        cost(our_calls, shape),
        cost(bound, shape),
        cost(theirs["calls"], shape),
    )
    # SAELens' default mask (exclude_special_tokens=True) holds only the structural ids
    # (BOS, EOS, PAD, SEP); ours every special id. Both sides got ours: count what it changes.
    from sae_lens.util import get_special_token_ids

    only_ours = sorted(set(ours["special"]) - set(get_special_token_ids(ours["lm"].tokenizer)))
    masked_only_by_us = int(torch.isin(ours["tokens"], torch.tensor(only_ours)).sum())
    rows = []
    for spec in specs:
        mine, other = ours["values"][spec.id], theirs["values"][spec.id]
        for name, value in other.items():
            rows.append((spec.id, name, mine[name], value, mine[name] - value))
    benchmark.extra_info.update(
        {
            "n_saes": n_saes,
            "saes": [s.id for s in specs],
            "n_positions": info.n_positions,
            "n_tokens_counted": info.n_tokens,
            "batch_size": settings.batch_size,
            "special_ids_only_we_mask": only_ours,
            "positions_masked_only_by_us": masked_only_by_us,
            "ours_seconds": ours["seconds"],
            "ours_pass_seconds": info.seconds,
            "saelens_seconds": theirs["seconds"],
            "saelens_run_evals_seconds": sum(theirs["eval_seconds"].values()),
            "ratio": theirs["seconds"] / ours["seconds"],
            "ours_cpu_seconds": ours["cpu_seconds"],
            "saelens_cpu_seconds": theirs["cpu_seconds"],
            "cpu_ratio": theirs["cpu_seconds"] / ours["cpu_seconds"],
            "ours_lm_forward_calls": info.lm_forward_calls,
            "saelens_lm_forward_calls": theirs["calls"],
            "bound_lm_forward_calls": {
                "to_hook": n_batches,
                "clean_tail": n_batches,
                "zero_tail": n_batches,
                "sae_tail": n_batches * n_saes,
            },
            "layer_equivalents": {
                "per_layer_shape": shape,
                "ours": our_cost,
                "bound": bound_cost,
                "saelens": their_cost,
                "ratio_saelens_over_ours": their_cost / our_cost,
            },
            "values": [
                {"sae": s, "metric": m, "ours": a, "saelens": b, "difference": d}
                for s, m, a, b, d in rows
            ],
        }
    )
    print(
        f"\nN={n_saes}: ours {ours['seconds']:.1f} s (pass {info.seconds:.1f} s), SAELens "
        f"{theirs['seconds']:.1f} s (run_evals {sum(theirs['eval_seconds'].values()):.1f} s), "
        f"ratio {theirs['seconds'] / ours['seconds']:.2f} (CPU seconds {ours['cpu_seconds']:.0f} "
        f"vs {theirs['cpu_seconds']:.0f}: {theirs['cpu_seconds'] / ours['cpu_seconds']:.2f}); "
        f"forward calls ours "
        f"{info.lm_forward_calls}, SAELens {theirs['calls']}, bound {bound} + clean tail; "
        f"layer-equivalents ours {our_cost:.0f}, bound {bound_cost:.0f}, SAELens "
        f"{their_cost:.0f}; positions only our special-token mask drops: {masked_only_by_us}"
    )
    for sae, name, a, b, d in rows:
        print(f"  {sae:28s} {name:26s} ours {a:+.6f} SAELens {b:+.6f} diff {d:+.2e}")

    assert our_calls["full"] == n_batches
    assert our_calls["to_hook"] == 0
    assert our_calls["tail"] == bound["tail"] - n_batches  # the clean tail is in the full pass
    for sae, name, a, b, _ in rows:
        if name in AGREE:
            assert a == pytest.approx(b, rel=TOLERANCE, abs=TOLERANCE), (sae, name)
    for spec in specs:
        mine, other = ours["values"][spec.id], theirs["values"][spec.id]
        # The scores differ only through the ablation term: ours with SAELens' ablated CE/KL
        # gives SAELens' score.
        ce_zero, kl_zero = other["ce_loss_with_ablation"], other["kl_div_with_ablation"]
        ce_score = (ce_zero - mine["ce_loss_with_sae"]) / (ce_zero - mine["ce_loss_clean"])
        kl_score = (kl_zero - mine["kl_div_with_sae"]) / kl_zero
        assert ce_score == pytest.approx(other["ce_loss_score"], abs=TOLERANCE), spec.id
        assert kl_score == pytest.approx(other["kl_div_score"], abs=TOLERANCE), spec.id
