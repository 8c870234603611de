"""Tiny test subjects built in code: a BPE tokenizer, 2-layer Llama and GPT-2 models, and
SAEs with known answers (identity, zero) or trained with sae-lens' trainer."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import torch

from interpscore.subjects.data import iter_texts, pack_tokens
from interpscore.subjects.models import load_model

REPO = Path(__file__).resolve().parents[1]
D_MODEL = 64
HOOK = "blocks.1.hook_resid_post"


def corpus_docs(n: int) -> list[str]:
    """The first ``n`` documents of the bundled evaluation slice (real English text)."""
    docs = []
    with lzma.open(
        REPO / "fixtures" / "corpus" / "eval.jsonl.xz", "rt", encoding="utf-8"
    ) as handle:
        for line in handle:
            docs.append(json.loads(line)["text"])
            if len(docs) == n:
                break
    return docs


def write_corpus(path: Path, n_docs: int = 200) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for doc in corpus_docs(n_docs):
            handle.write(json.dumps({"text": doc}) + "\n")
    return path


def build_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def build_model(kind: str, tokenizer, path: Path, seed: int = 0) -> Path:
    """Save a randomly initialised 2-layer model (d_model 64) with its tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    if kind == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=D_MODEL,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            pad_token_id=tokenizer.pad_token_id,
            **ids,
        )
        model = LlamaForCausalLM(config)
    else:
        config = GPT2Config(
            vocab_size=len(tokenizer), n_embd=D_MODEL, n_layer=2, n_head=4, n_positions=256, **ids
        )
        model = GPT2LMHeadModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_sae(sae, path: Path, model: str, hook: str = HOOK, **metadata) -> Path:
    sae.cfg.metadata.model_name = model
    sae.cfg.metadata.hook_name = hook
    for key, value in metadata.items():
        setattr(sae.cfg.metadata, key, value)
    sae.save_model(path)
    return path


def identity_sae(d_in: int = D_MODEL):
    """W_enc = [I, -I], W_dec = [I; -I], ReLU: f = (relu(x), relu(-x)) and x̂ = x exactly."""
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=2 * d_in))
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def zero_sae(d_in: int = D_MODEL, d_sae: int = 32):
    """Decoder and biases zero: x̂ = 0 at every position, the same as zero-ablation."""
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_dec.zero_()
        sae.b_dec.zero_()
    return sae


def activations(model_dir: Path, corpus: Path, n_positions: int, hook: str = HOOK) -> torch.Tensor:
    """Hook activations at ordinary-token positions, (n_tokens, d)."""
    lm = load_model(str(model_dir))
    window = pack_tokens(lm.tokenizer, iter_texts(str(corpus)), n_positions, 64, str(corpus))
    acts = lm.activations(window.tokens, lm.site(hook))
    return acts[~window.special]
