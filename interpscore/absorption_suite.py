"""First-letter absorption for the SAEs of one (model, hook): shared words, prompts and probes.

Words are single alphabetic tokens of the model's vocabulary, sampled per first letter
(seeded) and split train/val/test by letter. Each word is read at its own token after an
in-context prefix of ten ``"{word} has the first letter: X"`` lines built from a separate
word pool, so no target word appears in its own prompt; a handful of prefixes are shared
through a key/value cache, which makes a word cost one token of compute. The ground-truth
letter probes are fitted once per (model, hook); each SAE then needs one encode.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interpscore.hooked import HookedLM, HookSite
from interpscore.metrics import absorption as ab
from interpscore.metrics.stats import resample_weights
from interpscore.values import MetricValue

ABSORPTION_METRICS = ("absorption", "absorption_full_rate", "absorption_split_latents")
_WORD = re.compile(r"^ ?[A-Za-z]+$")


@dataclass(frozen=True)
class AbsorptionSettings:
    n_words: int = 1500
    n_prefixes: int = 8
    icl_examples: int = 10
    min_probe_f1: float = 0.6
    min_letters: int = 20
    max_k: int = 10
    f1_jump: float = 0.03
    seed: int = 0
    bootstrap: int = 1000


@dataclass
class WordData:
    """Words, their letters and split, residuals at the word token, and letter probes."""

    token_ids: np.ndarray
    letters: np.ndarray
    split: dict[str, np.ndarray]
    x: np.ndarray
    probes: dict[int, ab.LetterProbe] = field(default_factory=dict)

    def positive(self, part: str, letter: int) -> np.ndarray:
        return self.letters[self.split[part]] == letter


def alphabetic_vocabulary(tokenizer: Any) -> list[tuple[int, str]]:
    """(token id, text) of every single-token word: letters only, one leading space allowed."""
    special = set(tokenizer.all_special_ids)
    out = []
    for token_id in range(len(tokenizer)):
        if token_id in special:
            continue
        text = tokenizer.decode([token_id])
        if _WORD.match(text):
            out.append((token_id, text))
    return out


class AbsorptionSuite:
    def __init__(self, lm: HookedLM, site: HookSite, settings: AbsorptionSettings) -> None:
        self.lm = lm
        self.site = site
        self.settings = settings
        self._data: WordData | None = None

    def _prefixes(self, pool: list[tuple[int, str]], rng: np.random.Generator) -> list[list[int]]:
        tok = self.lm.tokenizer
        bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        prefixes = []
        for _ in range(self.settings.n_prefixes):
            chosen = rng.choice(len(pool), self.settings.icl_examples, replace=False)
            lines = "".join(
                f"\n{pool[i][1]} has the first letter: {pool[i][1].strip()[0].upper()}"
                for i in chosen
            )
            prefixes.append([bos, *tok(lines + "\n", add_special_tokens=False)["input_ids"]])
        return prefixes

    @property
    def data(self) -> WordData:
        if self._data is None:
            s = self.settings
            rng = np.random.default_rng(s.seed)
            vocab = alphabetic_vocabulary(self.lm.tokenizer)
            by_letter: dict[int, list[tuple[int, str]]] = {}
            for token_id, text in vocab:
                by_letter.setdefault(
                    string.ascii_lowercase.index(text.strip()[0].lower()), []
                ).append((token_id, text))
            pool_idx = rng.choice(len(vocab), 10 * s.icl_examples, replace=False)
            pool = [vocab[i] for i in pool_idx]
            pool_ids = {vocab[i][0] for i in pool_idx}
            per_letter = -(-s.n_words // 26)
            ids, letters, parts = [], [], []
            for letter in sorted(by_letter):
                words = [w for w in by_letter[letter] if w[0] not in pool_ids]
                chosen = [words[i] for i in rng.permutation(len(words))[:per_letter]]
                cut = np.cumsum([round(0.6 * len(chosen)), round(0.2 * len(chosen))])
                for position, (token_id, _) in enumerate(chosen):
                    ids.append(token_id)
                    letters.append(letter)
                    parts.append(
                        "train" if position < cut[0] else "val" if position < cut[1] else "test"
                    )
            ids_arr, parts_arr = np.array(ids), np.array(parts)
            prefix_of = rng.integers(0, s.n_prefixes, len(ids_arr))
            x = np.zeros((len(ids_arr), self.lm.d_model), dtype=np.float64)
            for p, prefix in enumerate(self._prefixes(pool, rng)):
                rows = np.flatnonzero(prefix_of == p)
                if len(rows):
                    acts = self.lm.activations_after_prefix(
                        prefix, torch.from_numpy(ids_arr[rows]), self.site
                    )
                    x[rows] = acts.to(torch.float64).cpu().numpy()
            split = {name: np.flatnonzero(parts_arr == name) for name in ("train", "val", "test")}
            data = WordData(ids_arr, np.array(letters), split, x)
            for letter in sorted(set(letters)):
                if data.positive("val", letter).any() and data.positive("train", letter).any():
                    data.probes[letter] = ab.fit_letter_probe(
                        x[split["train"]],
                        data.positive("train", letter),
                        x[split["val"]],
                        data.positive("val", letter),
                    )
            self._data = data
        return self._data

    def qualifying_letters(self) -> list[int]:
        return sorted(
            letter
            for letter, probe in self.data.probes.items()
            if probe.f1_val > self.settings.min_probe_f1
        )

    def values(self, sae: torch.nn.Module) -> dict[str, MetricValue]:
        """The three absorption metrics of one SAE (not applicable without enough letters)."""
        s, data = self.settings, self.data
        letters = self.qualifying_letters()
        f1s = {string.ascii_lowercase[k]: round(p.f1_val, 4) for k, p in data.probes.items()}
        base = {
            "probe_f1_val": f1s,
            "qualifying_letters": [string.ascii_lowercase[k] for k in letters],
            "min_probe_f1": s.min_probe_f1,
            "words": {k: len(v) for k, v in data.split.items()},
        }
        if len(letters) < s.min_letters:
            reason = (
                f"only {len(letters)} letters have a probe F1 above {s.min_probe_f1} on "
                f"validation; {s.min_letters} are needed"
            )
            return {
                m: MetricValue(None, details={**base, "reason": reason}, applicable=False)
                for m in ABSORPTION_METRICS
            }
        with torch.inference_mode():
            f = sae.encode(torch.from_numpy(data.x).to(torch.float32)).to(torch.float64).numpy()
        w_dec = sae.W_dec.detach().to(torch.float64).cpu().numpy()
        tr, va, te = (data.split[k] for k in ("train", "val", "test"))
        weights = (
            resample_weights(len(te), s.bootstrap, s.seed + 104729) if s.bootstrap > 0 else None
        )
        fractions, fulls, splits, per_letter = [], [], [], {}
        rows_of: list[np.ndarray] = []
        for letter in letters:
            probe = data.probes[letter]
            main, history = ab.main_latents(
                f[tr],
                data.positive("train", letter),
                f[va],
                data.positive("val", letter),
                s.max_k,
                s.f1_jump,
            )
            test_pos = np.flatnonzero(data.positive("test", letter))
            rows = test_pos[probe.scores(data.x[te][test_pos]) > 0]
            frac, full = ab.absorption(data.x[te][rows], f[te][rows], w_dec, probe.direction, main)
            fractions.append(frac)
            fulls.append(full)
            splits.append(len(main))
            rows_of.append(rows)
            per_letter[string.ascii_lowercase[letter]] = {
                "main_latents": main,
                "f1_by_k": [round(v, 4) for v in history],
                "true_positives": len(rows),
                "absorption_fraction": float(frac.mean()) if len(rows) else None,
                "full_absorption_rate": float(full.mean()) if len(rows) else None,
            }

        def letter_mean(values: list[np.ndarray], w: np.ndarray | None) -> np.ndarray:
            means = []
            for v, rows in zip(values, rows_of, strict=True):
                if w is None:
                    means.append(v.mean() if len(v) else np.nan)
                else:
                    wr = w[:, rows]
                    with np.errstate(invalid="ignore", divide="ignore"):
                        means.append((wr * v).sum(1) / wr.sum(1))
            return np.nanmean(np.array(means, dtype=np.float64), axis=0)

        details = {**base, "per_letter": per_letter, "method": "SAEBench first-letter absorption"}
        reps = (lambda v: letter_mean(v, weights)) if weights is not None else (lambda v: None)
        return {
            "absorption": MetricValue(
                float(letter_mean(fractions, None)), reps(fractions), "word", details
            ),
            "absorption_full_rate": MetricValue(
                float(letter_mean([x.astype(float) for x in fulls], None)),
                reps([x.astype(float) for x in fulls]),
                "word",
                details,
            ),
            "absorption_split_latents": MetricValue(
                float(np.mean(splits)), None, "letter", details
            ),
        }
