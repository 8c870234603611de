"""SAE specs and loading: local sae-lens or dictionary_learning directories, hub repos,
and sae-lens' pretrained releases, all returned as sae-lens SAE objects.

Spec forms (``NAME=`` in front sets the test id):

* a local directory holding ``cfg.json`` + ``sae_weights.safetensors`` (sae-lens);
* a local directory holding ``ae.pt`` + ``config.json`` (dictionary_learning), read with
  ``torch.load(weights_only=True)``;
* ``zoo:NAME``, one SAE of the bundled zoo (recorded as given, wherever the zoo lives);
* ``RELEASE/SAE_ID`` from sae-lens' pretrained directory;
* ``REPO_ID[/PATH][@REVISION]`` on the Hugging Face hub (honours the HF cache and
  ``HF_HUB_OFFLINE``); the downloaded folder is then read as one of the local forms.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from interpscore.errors import SpecError, redact_secrets, summarize
from interpscore.subjects.models import ModelRef, parse_model_ref

SpecKind = Literal["saelens-dir", "dictionary-learning-dir", "hub", "saelens-release"]

SUPPORTED_ARCHITECTURES = ("standard", "topk", "batchtopk", "jumprelu", "gated", "abstopk")
SAELENS_FILES = ("cfg.json", "sae_weights.safetensors")
DICTIONARY_LEARNING_FILES = ("ae.pt", "config.json")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
ZOO_PREFIX = "zoo:"


@dataclass(frozen=True)
class SAESpec:
    """A parsed ``--sae`` value."""

    text: str
    id: str
    kind: SpecKind
    location: str
    path: str | None = None
    revision: str | None = None


@dataclass
class LoadedSAE:
    """An SAE ready to evaluate, with what the report says about it."""

    spec: SAESpec
    sae: Any
    model: ModelRef
    hook_name: str
    architecture: str
    k: float | None
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def layer(self) -> int | None:
        match = re.match(r"blocks\.(\d+)\.", self.hook_name)
        return int(match.group(1)) if match else None

    @property
    def control_of(self) -> str | None:
        value = self.metadata.get("control_of")
        return str(value) if value else None

    def describe(self) -> dict[str, Any]:
        """The identity fields of a report entry."""
        return {
            "id": self.id,
            "sae_repo": self.source,
            "model": str(self.model),
            "hook": self.hook_name,
            "layer": self.layer,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "architecture": self.architecture,
            "k": self.k,
            "control_of": self.control_of,
            "tokens_trained": self.metadata.get("training_tokens"),
        }


def _readable_id(text: str) -> str:
    text = redact_secrets(text).rstrip("/")
    return _ID_UNSAFE.sub("-", text).strip("-") or "sae"


def _saelens_releases() -> dict[str, Any]:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    return get_pretrained_saes_directory()


def _zoo_spec(text: str, explicit_id: str | None) -> SAESpec:
    """``zoo:NAME``: an SAE of the bundled zoo, found wherever the zoo is installed."""
    from interpscore.subjects.paths import zoo_dir

    name = text[len(ZOO_PREFIX) :]
    root = zoo_dir()
    if not name or "/" in name or not (root / name / "cfg.json").is_file():
        names = sorted(p.name for p in root.iterdir() if (p / "cfg.json").is_file())
        raise SpecError(
            f"--sae {text}: the bundled zoo has no SAE {name!r}.",
            f"use one of {', '.join(ZOO_PREFIX + n for n in names)}.",
        )
    return SAESpec(text, explicit_id or name, "saelens-dir", str(root / name))


def parse_sae_spec(text: str) -> SAESpec:
    """Classify a ``--sae`` value; the error lists the accepted forms. A credential in the
    value (a token in a path or URL) is kept for loading but never shown: the spec's text
    and id, which reports and messages use, have it redacted."""
    spec = _parse_sae_spec(text)
    shown = redact_secrets(spec.id)
    return replace(
        spec,
        text=redact_secrets(spec.text),
        id=spec.id if shown == spec.id else _readable_id(shown),
    )


def _parse_sae_spec(text: str) -> SAESpec:
    name, sep, rest = text.partition("=")
    explicit_id = None
    if sep and name and "/" not in name and not Path(text).exists():
        explicit_id, text = name, rest
    if not text:
        raise SpecError(
            "Empty --sae value.", "pass a directory, REPO_ID[/PATH][@REV] or RELEASE/SAE_ID."
        )
    if text.startswith(ZOO_PREFIX):
        return _zoo_spec(text, explicit_id)
    path = Path(text).expanduser()
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if set(SAELENS_FILES) <= names:
            kind: SpecKind = "saelens-dir"
        elif set(DICTIONARY_LEARNING_FILES) <= names:
            kind = "dictionary-learning-dir"
        else:
            raise SpecError(
                f"Directory {path} holds neither {' + '.join(SAELENS_FILES)} (sae-lens) nor "
                f"{' + '.join(DICTIONARY_LEARNING_FILES)} (dictionary_learning).",
                "point --sae at the folder that contains the SAE's weights and config.",
            )
        return SAESpec(text, explicit_id or _readable_id(path.resolve().name), kind, str(path))
    if path.exists():
        raise SpecError(f"--sae {text} is a file, not a directory.", "pass its folder instead.")
    if text.startswith((".", "/", "~")):
        raise SpecError(f"SAE directory {text} does not exist.", "check the --sae path.")
    head, _, tail = text.partition("/")
    if head in _saelens_releases():
        if not tail:
            raise SpecError(
                f"--sae {text} names the sae-lens release {head} but no SAE in it.",
                f"use {head}/SAE_ID (see sae-lens' pretrained SAE table).",
            )
        return SAESpec(text, explicit_id or _readable_id(text), "saelens-release", head, tail)
    body, _, revision = text.partition("@")
    parts = [p for p in body.split("/") if p]
    if len(parts) >= 2 and all(re.fullmatch(r"[A-Za-z0-9_.-]+", p) for p in parts):
        repo = "/".join(parts[:2])
        sub = "/".join(parts[2:]) or None
        return SAESpec(text, explicit_id or _readable_id(body), "hub", repo, sub, revision or None)
    raise SpecError(
        f"--sae {text!r} is not a directory, a sae-lens RELEASE/SAE_ID, or a hub "
        "REPO_ID[/PATH][@REVISION].",
        "pass one of those forms (NAME=SPEC sets the test id).",
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path} is not valid JSON ({exc.msg}).", "fix or re-export it.") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path} is not UTF-8 text.", "fix or re-export it.") from exc
    except OSError as exc:
        raise SpecError(f"Cannot read {path}: {exc.strerror}.", "check its permissions.") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path} is not a JSON object.", "re-export the SAE config.")
    return data


def _meta(cfg: dict[str, Any], key: str) -> Any:
    metadata = cfg.get("metadata") or {}
    return metadata.get(key, cfg.get(key))


def _check_finite(sae: Any, where: str) -> None:
    for name, tensor in sae.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise SpecError(
                f"SAE {where} has NaN or inf values in {name}.",
                "re-export or retrain the SAE; the harness does not evaluate non-finite weights.",
            )


def _architecture(cfg: dict[str, Any]) -> str:
    metadata = cfg.get("metadata") or {}
    return str(metadata.get("training_architecture") or cfg.get("architecture") or "standard")


def _k_of(cfg: dict[str, Any]) -> float | None:
    if cfg.get("k") is not None:
        return float(cfg["k"])
    details = (cfg.get("metadata") or {}).get("training_architecture_details") or {}
    return float(details["k"]) if details.get("k") is not None else None


def _finish(spec: SAESpec, sae: Any, cfg: dict[str, Any], source: str) -> LoadedSAE:
    architecture = _architecture(cfg)
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise SpecError(
            f"SAE {spec.id} has architecture {architecture!r}.",
            f"the harness evaluates {', '.join(SUPPORTED_ARCHITECTURES)} SAEs.",
        )
    hook = _meta(cfg, "hook_name")
    if not hook:
        raise SpecError(
            f"The config of SAE {spec.id} has no hook_name.",
            "add metadata.hook_name (e.g. blocks.12.hook_resid_post) to cfg.json.",
        )
    model_name = _meta(cfg, "model_name")
    variant = _meta(cfg, "model_variant")
    model = (
        parse_model_ref(
            f"{model_name}::{variant}@{_meta(cfg, 'model_variant_seed') or 0}"
            if variant
            else str(model_name)
        )
        if model_name
        else ModelRef(base="")
    )
    _check_finite(sae, spec.id)
    sae.eval()
    metadata = {k: v for k, v in (cfg.get("metadata") or {}).items() if _jsonable(v)}
    return LoadedSAE(
        spec=spec,
        sae=sae,
        model=model,
        hook_name=str(hook),
        architecture=architecture,
        k=_k_of(cfg),
        source=source,
        metadata=metadata,
    )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _load_saelens_dir(spec: SAESpec, path: Path, device: str, source: str) -> LoadedSAE:
    from sae_lens import SAE

    cfg = _read_json(path / "cfg.json")
    missing = [key for key in ("d_in", "d_sae") if key not in cfg]
    if missing:
        raise SpecError(
            f"{path / 'cfg.json'} is missing field(s) {', '.join(missing)}.",
            "add them (the SAE's input width and number of latents).",
        )
    _check_safetensors(path / "sae_weights.safetensors")
    try:
        sae = SAE.load_from_disk(path, device=device, dtype="float32")
    except Exception as exc:  # any failure here is this SAE's, said in one line
        raise SpecError(
            f"sae-lens cannot load {path} ({summarize(exc)}).",
            "check cfg.json against sae_weights.safetensors (architecture, d_in, d_sae), "
            "or re-export the SAE.",
        ) from exc
    return _finish(spec, sae, cfg, source)


def _check_safetensors(path: Path) -> None:
    """Refuse a weights file whose header or tensor table cannot be read, naming the file."""
    from safetensors import safe_open

    if path.stat().st_size == 0:
        raise SpecError(f"{path} is empty.", "re-download or re-save the SAE's weights.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                handle.get_slice(key).get_shape()
    except Exception as exc:  # the library raises its own error types
        raise SpecError(
            f"{path} is not a readable safetensors file ({summarize(exc)}).",
            "re-download or re-save the SAE's weights.",
        ) from exc


def _dictionary_learning_state(
    ae: dict[str, torch.Tensor], dict_class: str
) -> tuple[str, dict[str, torch.Tensor], bool]:
    """Map a dictionary_learning state dict onto sae-lens parameter names."""

    def get(*names: str) -> torch.Tensor:
        for name in names:
            if name in ae:
                return ae[name]
        raise SpecError(
            f"dictionary_learning {dict_class} weights lack {' / '.join(names)}.",
            "re-export the SAE with dictionary_learning's save format.",
        )

    if dict_class == "JumpReluAutoEncoder":
        state = {
            "W_enc": get("W_enc"),
            "b_enc": get("b_enc"),
            "W_dec": get("W_dec"),
            "b_dec": get("b_dec"),
            "threshold": get("threshold"),
        }
        return "jumprelu", state, False
    w_enc = get("encoder.weight").T
    w_dec = get("decoder.weight").T
    if dict_class == "AutoEncoder":
        state = {"W_enc": w_enc, "b_enc": get("encoder.bias"), "W_dec": w_dec, "b_dec": get("bias")}
        return "standard", state, True
    if dict_class == "AutoEncoderTopK":
        state = {
            "W_enc": w_enc,
            "b_enc": get("encoder.bias"),
            "W_dec": w_dec,
            "b_dec": get("b_dec"),
        }
        return "topk", state, True
    if dict_class in ("BatchTopKSAE", "MatryoshkaBatchTopKSAE"):
        threshold = get("threshold")
        if threshold.ndim == 0:
            threshold = torch.full((w_enc.shape[1],), float(threshold))
        state = {
            "W_enc": w_enc,
            "b_enc": get("encoder.bias"),
            "W_dec": w_dec,
            "b_dec": get("b_dec"),
            "threshold": threshold,
        }
        return "jumprelu", state, True
    raise SpecError(
        f"dictionary_learning class {dict_class!r} is not supported.",
        "supported: AutoEncoder, AutoEncoderTopK, BatchTopKSAE, MatryoshkaBatchTopKSAE, "
        "JumpReluAutoEncoder; or convert the SAE to sae-lens format.",
    )


def _load_dictionary_learning_dir(spec: SAESpec, path: Path, device: str, source: str) -> LoadedSAE:
    from sae_lens import SAE

    config = _read_json(path / "config.json")
    trainer = config.get("trainer")
    if not isinstance(trainer, dict):
        raise SpecError(f"{path / 'config.json'} has no 'trainer' table.", "re-export the SAE.")
    missing = [
        k for k in ("dict_class", "activation_dim", "dict_size", "layer") if k not in trainer
    ]
    if missing:
        raise SpecError(
            f"{path / 'config.json'} trainer is missing field(s) {', '.join(missing)}.",
            "re-export the SAE with dictionary_learning.",
        )
    try:
        ae = torch.load(path / "ae.pt", map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as exc:
        raise SpecError(
            f"Cannot read {path / 'ae.pt'} as plain tensors ({type(exc).__name__}).",
            "only weights-only checkpoints are loaded; re-save the state dict with torch.save.",
        ) from exc
    architecture, state, apply_b_dec = _dictionary_learning_state(ae, str(trainer["dict_class"]))
    submodule = str(trainer.get("submodule_name", ""))
    site = "resid_pre" if "resid_pre" in submodule else "resid_post"
    cfg: dict[str, Any] = {
        "architecture": architecture,
        "d_in": int(trainer["activation_dim"]),
        "d_sae": int(trainer["dict_size"]),
        "dtype": "float32",
        "device": device,
        "apply_b_dec_to_input": apply_b_dec,
        "metadata": {
            "model_name": str(trainer.get("lm_name", "")),
            "hook_name": f"blocks.{int(trainer['layer'])}.hook_{site}",
            "training_architecture": "batchtopk"
            if "BatchTopK" in str(trainer["dict_class"])
            else architecture,
        },
    }
    if architecture == "topk":
        cfg["k"] = int(trainer.get("k") or int(ae.get("k", torch.tensor(0))))
    if "BatchTopK" in str(trainer["dict_class"]) and trainer.get("k") is not None:
        cfg["metadata"]["training_architecture_details"] = {"k": trainer["k"]}
    sae = SAE.from_dict({k: v for k, v in cfg.items() if k != "metadata"})
    try:
        sae.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise SpecError(
            f"Weights in {path / 'ae.pt'} do not match config.json ({str(exc).splitlines()[0]}).",
            "check activation_dim and dict_size.",
        ) from exc
    return _finish(spec, sae.to(device), cfg, source)


def _hub_offline_error(spec: SAESpec, exc: Exception) -> SpecError:
    return SpecError(
        f"Cannot fetch SAE {spec.text!r} from the Hugging Face hub "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}).",
        "download it where there is network and pass the local directory with --sae, or set "
        "HF_HUB_OFFLINE=1 with the repo already in the HF cache.",
    )


def _load_hub(spec: SAESpec, device: str) -> LoadedSAE:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = [f"{spec.path}/*"] if spec.path else None
    try:
        root = Path(
            snapshot_download(spec.location, revision=spec.revision, allow_patterns=patterns)
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise _hub_offline_error(spec, exc) from exc
    folder = root / spec.path if spec.path else root
    local = parse_sae_spec(str(folder))
    source = spec.location + (f"/{spec.path}" if spec.path else "")
    source += f"@{spec.revision}" if spec.revision else ""
    return _load_local(SAESpec(spec.text, spec.id, local.kind, str(folder)), device, source)


def _load_release(spec: SAESpec, device: str) -> LoadedSAE:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from sae_lens import SAE

    releases = _saelens_releases()
    known = releases[spec.location].saes_map
    if spec.path not in known:
        sample = ", ".join(list(known)[:5])
        raise SpecError(
            f"sae-lens release {spec.location} has no SAE {spec.path!r}.",
            f"use one of its ids, e.g. {sample}.",
        )
    try:
        sae, cfg, _ = SAE.from_pretrained_with_cfg_and_sparsity(
            spec.location, spec.path, device=device, dtype="float32"
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise _hub_offline_error(spec, exc) from exc
    cfg = {**cfg, "metadata": sae.cfg.metadata.to_dict()}
    return _finish(spec, sae, cfg, f"{spec.location}/{spec.path}")


def _load_local(spec: SAESpec, device: str, source: str | None = None) -> LoadedSAE:
    path = Path(spec.location)
    if spec.kind == "saelens-dir":
        return _load_saelens_dir(spec, path, device, source or spec.text)
    return _load_dictionary_learning_dir(spec, path, device, source or spec.text)


def load_sae(spec: SAESpec | str, device: str = "cpu") -> LoadedSAE:
    """Load any supported spec as a float32 sae-lens SAE in eval mode."""
    if isinstance(spec, str):
        spec = parse_sae_spec(spec)
    if spec.kind == "hub":
        return _load_hub(spec, device)
    if spec.kind == "saelens-release":
        return _load_release(spec, device)
    return _load_local(spec, device)


def unique_ids(specs: list[SAESpec]) -> list[SAESpec]:
    """Make test ids unique by suffixing repeats with -2, -3, …"""
    seen: dict[str, int] = {}
    out = []
    for spec in specs:
        count = seen.get(spec.id, 0) + 1
        seen[spec.id] = count
        out.append(spec if count == 1 else SAESpec(**{**spec.__dict__, "id": f"{spec.id}-{count}"}))
    return out
