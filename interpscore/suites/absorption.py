"""First-letter absorption (SAEBench's definition): shared words, prompts and probes per
(model, hook), one encode per SAE.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interpscore.evaluation.cache_keys import tensor_hash
from interpscore.evaluation.control_values import cached_control_values
from interpscore.evaluation.prepared import cached_arrays
from interpscore.metrics import absorption as ab
from interpscore.metrics.stats import resample_weights
from interpscore.results.records import MetricValue
from interpscore.settings import option, positive_int, to_dict
from interpscore.subjects.hooked import HookedLM, HookSite
from interpscore.subjects.tokens import bos_id
from interpscore.suites.base import GroupContext, MetricSpec, SubjectContext, Suite

_WORD = re.compile(r"^ ?[A-Za-z]+$")
SPLITS = ("train", "val", "test")
#: Value-cache kind of a (model, hook)'s words, activations and letter probes.
WORD_DATA = "absorption_words"


@dataclass(frozen=True)
class AbsorptionSettings:
    n_words: int = option(
        1500,
        "--absorption-words",
        "Single-token words for first-letter absorption, spread over letters.",
        metavar="N",
        type=positive_int,
    )
    min_letters: int = option(
        20,
        "--absorption-min-letters",
        "Letters whose probe F1 must exceed 0.6 for absorption to apply (as SAEBench).",
        metavar="N",
        type=positive_int,
    )
    n_prefixes: int = 8
    icl_examples: int = 10
    min_probe_f1: float = 0.6
    max_k: int = 10
    f1_jump: float = 0.03


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

    def fingerprint(self) -> str:
        """A content hash of the words, their split, activations and letter probes: what a
        random-init control's stored values are keyed by."""
        probes = [
            np.append(p.coef, [letter, p.intercept, p.f1_val])
            for letter, p in sorted(self.probes.items())
        ]
        splits = [self.split[k] for k in sorted(self.split)]
        return tensor_hash(self.token_ids, self.letters, self.x, *splits, *probes)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything as named arrays (for the value cache; :meth:`from_arrays` inverts)."""
        letters = sorted(self.probes)
        coef = [self.probes[k].coef for k in letters]
        return {
            "token_ids": self.token_ids,
            "letters": self.letters,
            "x": self.x,
            **{f"split.{name}": rows for name, rows in self.split.items()},
            "probe.letters": np.array(letters, dtype=np.int64),
            "probe.coef": np.stack(coef) if coef else np.zeros((0, self.x.shape[1])),
            "probe.intercept": np.array([self.probes[k].intercept for k in letters]),
            "probe.f1_val": np.array([self.probes[k].f1_val for k in letters]),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> WordData:
        probes = {
            int(letter): ab.LetterProbe(coef, float(intercept), float(f1))
            for letter, coef, intercept, f1 in zip(
                arrays["probe.letters"],
                arrays["probe.coef"],
                arrays["probe.intercept"],
                arrays["probe.f1_val"],
                strict=True,
            )
        }
        split = {name: arrays[f"split.{name}"] for name in SPLITS}
        return cls(arrays["token_ids"], arrays["letters"], split, arrays["x"], probes)


REQUIRED = (
    "token_ids",
    "letters",
    "x",
    *(f"split.{name}" for name in SPLITS),
    "probe.letters",
    "probe.coef",
    "probe.intercept",
    "probe.f1_val",
)


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


def icl_prefixes(
    tokenizer: Any,
    pool: list[tuple[int, str]],
    settings: AbsorptionSettings,
    rng: np.random.Generator,
) -> list[list[int]]:
    """BOS + ten in-context ``"{word} has the first letter: X"`` lines from the pool."""
    bos = bos_id(tokenizer)
    prefixes = []
    for _ in range(settings.n_prefixes):
        chosen = rng.choice(len(pool), settings.icl_examples, replace=False)
        lines = "".join(
            f"\n{pool[i][1]} has the first letter: {pool[i][1].strip()[0].upper()}" for i in chosen
        )
        prefixes.append([bos, *tokenizer(lines + "\n", add_special_tokens=False)["input_ids"]])
    return prefixes


def build_word_data(
    lm: HookedLM, site: HookSite, settings: AbsorptionSettings, seed: int
) -> WordData:
    """Words per letter, their split, residuals at the word token and the letter probes."""
    s = settings
    rng = np.random.default_rng(seed)
    vocab = alphabetic_vocabulary(lm.tokenizer)
    by_letter: dict[int, list[tuple[int, str]]] = {}
    for token_id, text in vocab:
        by_letter.setdefault(string.ascii_lowercase.index(text.strip()[0].lower()), []).append(
            (token_id, text)
        )
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
            parts.append("train" if position < cut[0] else "val" if position < cut[1] else "test")
    ids_arr, parts_arr = np.array(ids), np.array(parts)
    prefix_of = rng.integers(0, s.n_prefixes, len(ids_arr))
    x = np.zeros((len(ids_arr), lm.d_model), dtype=np.float64)
    for p, prefix in enumerate(icl_prefixes(lm.tokenizer, pool, s, rng)):
        rows = np.flatnonzero(prefix_of == p)
        if len(rows):
            acts = lm.activations_after_prefix(prefix, torch.from_numpy(ids_arr[rows]), site)
            x[rows] = acts.to(torch.float64).cpu().numpy()
    split = {name: np.flatnonzero(parts_arr == name) for name in SPLITS}
    data = WordData(ids_arr, np.array(letters), split, x)
    for letter in sorted(set(letters)):
        if data.positive("val", letter).any() and data.positive("train", letter).any():
            data.probes[letter] = ab.fit_letter_probe(
                x[split["train"]],
                data.positive("train", letter),
                x[split["val"]],
                data.positive("val", letter),
            )
    return data


class AbsorptionSuite(Suite):
    name = "absorption"
    description = "SAEBench first-letter feature absorption"
    settings_type = AbsorptionSettings
    metrics = (
        MetricSpec(
            "absorption",
            "mean over letters of the absorption fraction of probe-positive test words",
            direction="lower",
            bounds=(0.0, 1.0),
            ci_unit="word",
        ),
        MetricSpec(
            "absorption_full_rate",
            "mean over letters of the fraction of words fully absorbed",
            direction="lower",
            bounds=(0.0, 1.0),
            ci_unit="word",
        ),
        MetricSpec(
            "absorption_split_latents",
            "mean number of main latents per letter (feature splitting)",
            direction="none",
            bounds=(0.0, None),
            ci_unit=None,
        ),
    )

    def prepare(self, group: GroupContext) -> WordData:
        """The words, their activations and letter probes (from the value cache when
        stored: they depend on the model, hook, settings and seed, not on an SAE)."""
        settings = group.settings(self.name)
        key = {"hook": group.site.name, "settings": to_dict(settings), "seed": group.run.seed}
        arrays, _ = cached_arrays(
            group.value_cache(),
            WORD_DATA,
            key,
            REQUIRED,
            lambda: build_word_data(group.lm, group.site, settings, group.run.seed).to_arrays(),
        )
        return WordData.from_arrays(arrays)

    def compute(self, subject: SubjectContext, metric: MetricSpec) -> dict[str, MetricValue]:
        """The three absorption metrics of one SAE (a random-init control's from the value
        cache when stored)."""
        inputs = {"data": subject.state.fingerprint(), "settings": to_dict(subject.settings)}
        names = [spec.name for spec in self.metrics]
        return cached_control_values(subject, names, inputs, lambda: self._compute(subject))

    def _compute(self, subject: SubjectContext) -> dict[str, MetricValue]:
        """The three absorption metrics of one SAE (not applicable without enough letters)."""
        s: AbsorptionSettings = subject.settings
        data: WordData = subject.state
        run = subject.run
        letters = sorted(k for k, p in data.probes.items() if p.f1_val > s.min_probe_f1)
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
            return {m.name: MetricValue.not_applicable(reason, **base) for m in self.metrics}
        with subject.group.progress(), torch.inference_mode():
            sae = subject.sae
            f = sae.encode(torch.from_numpy(data.x).to(torch.float32)).to(torch.float64).numpy()
        w_dec = subject.sae.W_dec.detach().to(torch.float64).cpu().numpy()
        tr, va, te = (data.split[k] for k in ("train", "val", "test"))
        weights = (
            resample_weights(len(te), run.bootstrap, run.seed + 104729)
            if run.bootstrap > 0
            else None
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
            fulls.append(full.astype(float))
            splits.append(len(main))
            rows_of.append(rows)
            per_letter[string.ascii_lowercase[letter]] = {
                "main_latents": main,
                "f1_by_k": [round(v, 4) for v in history],
                "true_positives": len(rows),
                "absorption_fraction": float(frac.mean()) if len(rows) else None,
                "full_absorption_rate": float(full.mean()) if len(rows) else None,
            }

        def reps(values: list[np.ndarray]) -> np.ndarray | None:
            return letter_mean(values, rows_of, weights) if weights is not None else None

        details = {**base, "per_letter": per_letter, "method": "SAEBench first-letter absorption"}
        return {
            "absorption": MetricValue(
                float(letter_mean(fractions, rows_of, None)), reps(fractions), "word", details
            ),
            "absorption_full_rate": MetricValue(
                float(letter_mean(fulls, rows_of, None)), reps(fulls), "word", details
            ),
            "absorption_split_latents": MetricValue(
                float(np.mean(splits)), None, "letter", details
            ),
        }


def letter_mean(
    values: list[np.ndarray], rows_of: list[np.ndarray], weights: np.ndarray | None
) -> np.ndarray:
    """Mean over letters of each letter's mean over its words (per resample when weighted);
    letters without words are left out."""
    means = []
    for v, rows in zip(values, rows_of, strict=True):
        if weights is None:
            means.append(v.mean() if len(v) else np.nan)
        else:
            wr = weights[:, rows]
            with np.errstate(invalid="ignore", divide="ignore"):
                means.append((wr * v).sum(1) / wr.sum(1))
    return np.nanmean(np.array(means, dtype=np.float64), axis=0)
