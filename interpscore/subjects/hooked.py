"""Hook points on plain transformers causal LMs, without TransformerLens.

SAE configs name hook points the TransformerLens way (``blocks.15.hook_resid_post``);
this module maps those names onto a transformers model's modules and offers the three
runs an evaluation needs:

* :meth:`HookedLM.activations` runs the model up to the hook and stops there;
* :meth:`HookedLM.clean_pass` runs the whole model once and returns both the hooked
  activations and the logits;
* :meth:`HookedLM.logits_from` runs the model from the hook onward with replaced
  activations. For residual-stream hooks only the layers after the hook execute;
  other hooks fall back to a full forward with the module's output replaced.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from interpscore.errors import SpecError

SiteKind = Literal["resid_pre", "resid_post", "mlp_out", "attn_out"]

_TL_HOOK = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|mlp_out|attn_out)$")
_SUPPORTED_HOOKS = (
    "blocks.N.hook_resid_pre, blocks.N.hook_resid_post, blocks.N.hook_mlp_out, "
    "blocks.N.hook_attn_out, or a decoder-layer module path such as model.layers.N"
)
_LAYER_LIST_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm")
_MLP_NAMES = ("mlp", "feed_forward")
_ATTN_NAMES = ("self_attn", "attn", "attention")


@dataclass(frozen=True)
class HookSite:
    """A resolved hook point: the layer and what is read there."""

    name: str
    layer: int
    kind: SiteKind

    @property
    def is_residual(self) -> bool:
        return self.kind in ("resid_pre", "resid_post")


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass once the activations are captured."""


def _first_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _replace_first(output: Any, value: torch.Tensor) -> Any:
    if isinstance(output, tuple):
        return (value, *output[1:])
    if isinstance(output, list):
        return [value, *output[1:]]
    return value


def _hidden_from_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(
    args: tuple[Any, ...], kwargs: dict[str, Any], value: torch.Tensor
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args:
        return (value, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": value}


def _get_attr_path(root: nn.Module, path: str) -> Any:
    obj: Any = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_decoder_layers(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The module that owns the decoder-layer list, the attribute name, and the list."""
    for path in _LAYER_LIST_PATHS:
        layers = _get_attr_path(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            owner_path, _, attr = path.rpartition(".")
            return _get_attr_path(model, owner_path), attr, layers
    raise SpecError(
        f"Cannot find the decoder layers of {type(model).__name__}.",
        f"use a model whose layers live at one of {', '.join(_LAYER_LIST_PATHS)}.",
    )


def with_cache(module: nn.Module, cache: Any) -> dict[str, Any]:
    """Keyword arguments that hand a key/value cache to ``module.forward``: ``cache`` where
    transformers names it so (5.x), ``past_key_values`` before."""
    parameters = inspect.signature(module.forward).parameters
    return {"cache" if "cache" in parameters else "past_key_values": cache, "use_cache": True}


class HookedLM:
    """A transformers causal LM with TransformerLens-style hook points.

    The model may run in half precision (``--dtype``); activations and logits always
    come out in float32, and replaced activations are cast to the model's dtype.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, name: str) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self._owner, self._layers_attr, self.layers = find_decoder_layers(model)
        self.final_norm = next(
            (
                getattr(self._owner, n)
                for n in _FINAL_NORM_NAMES
                if isinstance(getattr(self._owner, n, None), nn.Module)
            ),
            None,
        )
        self.n_forward_calls = 0

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def d_model(self) -> int:
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.n_embd)

    @property
    def max_context(self) -> int | None:
        """The longest sequence the model's position embeddings allow (None: not stated)."""
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def check_context(self, context_len: int) -> None:
        """Refuse a context longer than the model's positions (it would run, silently wrong)."""
        limit = self.max_context
        if limit is not None and context_len > limit:
            raise SpecError(
                f"--context-len {context_len} is longer than {self.name} allows "
                f"({limit} positions).",
                f"use --context-len {limit} or less.",
            )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def site(self, hook_name: str) -> HookSite:
        """Resolve a hook name; the error names the valid layer range and forms."""
        match = _TL_HOOK.match(hook_name)
        if match:
            layer, kind = int(match.group(1)), match.group(2)
        else:
            layer_paths = [f"{p}.{{N}}" for p in _LAYER_LIST_PATHS]
            layer, kind = -1, "resid_post"
            for pattern in layer_paths:
                prefix = pattern.replace("{N}", "")
                if hook_name.startswith(prefix) and hook_name[len(prefix) :].isdigit():
                    layer = int(hook_name[len(prefix) :])
                    break
            else:
                raise SpecError(f"Unknown hook {hook_name!r}.", f"use {_SUPPORTED_HOOKS}.")
        if not 0 <= layer < self.n_layers:
            raise SpecError(
                f"Hook {hook_name!r} asks for layer {layer}, but {self.name} has "
                f"{self.n_layers} layers.",
                f"use a layer from 0 to {self.n_layers - 1}.",
            )
        canonical = f"blocks.{layer}.hook_{kind}"
        return HookSite(name=canonical, layer=layer, kind=kind)  # type: ignore[arg-type]

    def _submodule(self, layer: int, names: tuple[str, ...]) -> nn.Module:
        block = self.layers[layer]
        for name in names:
            module = getattr(block, name, None)
            if isinstance(module, nn.Module):
                return module
        raise SpecError(
            f"Layer {layer} of {self.name} has none of the submodules {', '.join(names)}.",
            "use a residual-stream hook (hook_resid_pre / hook_resid_post).",
        )

    @contextmanager
    def _capture(
        self, site: HookSite, store: dict[str, torch.Tensor], stop: bool
    ) -> Iterator[None]:
        """Register a hook that stores the site's activations (and optionally stops)."""

        def keep(value: torch.Tensor) -> None:
            store["acts"] = value.detach()
            if stop:
                raise _StopForward

        if site.kind == "resid_pre":

            def pre_hook(_m: nn.Module, args: tuple, kwargs: dict) -> None:
                keep(_hidden_from_call(args, kwargs))

            handle = self.layers[site.layer].register_forward_pre_hook(pre_hook, with_kwargs=True)
        else:
            module = {
                "resid_post": lambda: self.layers[site.layer],
                "mlp_out": lambda: self._submodule(site.layer, _MLP_NAMES),
                "attn_out": lambda: self._submodule(site.layer, _ATTN_NAMES),
            }[site.kind]()

            def post_hook(_m: nn.Module, _args: tuple, output: Any) -> None:
                keep(_first_tensor(output))

            handle = module.register_forward_hook(post_hook)
        try:
            yield
        finally:
            handle.remove()

    def _forward(self, input_ids: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Logits of every position, or (``last_only``) of the last one: the unembedding of
        one position instead of all, for models whose forward takes ``logits_to_keep``."""
        self.n_forward_calls += 1
        keep = {"logits_to_keep": 1} if last_only and self._keeps_logits else {}
        logits = self.model(input_ids=input_ids, use_cache=False, **keep).logits
        return (logits[:, -1:] if last_only else logits).float()

    @property
    def _keeps_logits(self) -> bool:
        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    @torch.inference_mode()
    def activations(self, input_ids: torch.Tensor, site: HookSite) -> torch.Tensor:
        """Activations at the hook, running only as far as the hook."""
        store: dict[str, torch.Tensor] = {}
        with self._capture(site, store, stop=True), suppress(_StopForward):
            self._forward(input_ids)
        return store["acts"].float()

    @torch.inference_mode()
    def activations_after_prefix(
        self, prefix: list[int], last_tokens: torch.Tensor, site: HookSite
    ) -> torch.Tensor:
        """Hook activations at one token appended to a shared prefix, for a batch of tokens.

        The prefix runs once into a key/value cache that every row then reuses, so a batch
        of B single-token continuations costs B tokens, not B prefixes. Returns (B, d).
        """
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        store: dict[str, torch.Tensor] = {}
        device = self.device
        with self._capture(site, store, stop=True), suppress(_StopForward):
            self.n_forward_calls += 1
            self.model(
                input_ids=torch.tensor([prefix], device=device), **with_cache(self.model, cache)
            )
        cache.batch_repeat_interleave(len(last_tokens))
        with self._capture(site, store, stop=True), suppress(_StopForward):
            self.n_forward_calls += 1
            self.model(input_ids=last_tokens.to(device)[:, None], **with_cache(self.model, cache))
        return store["acts"][:, -1].float()

    @torch.inference_mode()
    def clean_pass(
        self, input_ids: torch.Tensor, site: HookSite, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One full forward: the hooked activations and the clean logits (of the last
        position only, (batch, 1, vocab), with ``last_only``)."""
        store: dict[str, torch.Tensor] = {}
        with self._capture(site, store, stop=False):
            logits = self._forward(input_ids, last_only)
        return store["acts"].float(), logits

    @property
    def final_site(self) -> HookSite | None:
        """The last layer's output, which only the final norm and the unembedding read
        (None when the final norm is not found: nothing can run from there)."""
        if self.final_norm is None:
            return None
        layer = self.n_layers - 1
        return HookSite(name=f"blocks.{layer}.hook_resid_post", layer=layer, kind="resid_post")

    @torch.inference_mode()
    def clean_pass_with_final(
        self, input_ids: torch.Tensor, site: HookSite
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`clean_pass` that also returns the last layer's output: from it,
        ``logits_from(ids, final_site, final)`` gives the same logits without any layer."""
        final = self.final_site
        if final is None:
            raise SpecError(
                f"Cannot find the final norm of {self.name}.", "use clean_pass instead."
            )
        acts: dict[str, torch.Tensor] = {}
        last: dict[str, torch.Tensor] = {}
        with self._capture(site, acts, stop=False), self._capture(final, last, stop=False):
            logits = self._forward(input_ids)
        return acts["acts"].float(), last["acts"].float(), logits

    @contextmanager
    def _layers_from(self, start: int) -> Iterator[None]:
        """Temporarily keep only decoder layers ``start:`` so earlier ones do not run."""
        original = self.layers
        setattr(self._owner, self._layers_attr, nn.ModuleList(list(original)[start:]))
        try:
            yield
        finally:
            setattr(self._owner, self._layers_attr, original)

    @torch.inference_mode()
    def logits_from(
        self, input_ids: torch.Tensor, site: HookSite, acts: torch.Tensor, last_only: bool = False
    ) -> torch.Tensor:
        """Logits when the hook's activations are replaced by ``acts`` (of the last position
        only with ``last_only``).

        Residual hooks run only the layers after the hook; the embedding lookup still
        runs (it is cheap) but its output is discarded.
        """
        if site.is_residual:
            start = site.layer if site.kind == "resid_pre" else site.layer + 1
            target = self.layers[start] if start < self.n_layers else self.final_norm
            if target is None:
                raise SpecError(
                    f"Cannot find the final norm of {self.name} to run from {site.name}.",
                    "use a hook before the last layer.",
                )

            def replace_input(_m: nn.Module, args: tuple, kwargs: dict) -> tuple:
                return _with_hidden(args, kwargs, acts.to(_hidden_from_call(args, kwargs).dtype))

            handle = target.register_forward_pre_hook(replace_input, with_kwargs=True)
            try:
                with self._layers_from(start):
                    return self._forward(input_ids, last_only)
            finally:
                handle.remove()

        module = self._submodule(site.layer, _MLP_NAMES if site.kind == "mlp_out" else _ATTN_NAMES)

        def replace_output(_m: nn.Module, _args: tuple, output: Any) -> Any:
            return _replace_first(output, acts.to(_first_tensor(output).dtype))

        handle = module.register_forward_hook(replace_output)
        try:
            return self._forward(input_ids, last_only)
        finally:
            handle.remove()
