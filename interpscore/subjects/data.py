"""Text corpora and the fixed token windows every core metric reads.

A dataset spec is ``bundled`` (the committed evaluation slice), a local file
(``.txt``, ``.jsonl``/``.json`` optionally ``.xz``/``.gz``, ``.parquet``, ``.csv``)
or a hub dataset ``ID[:CONFIG][@SPLIT]``. Documents are tokenized without special
tokens, joined with the end-of-sequence token, cut into rows of ``context_len - 1``
tokens, and each row gets a beginning-of-sequence token in front. Special tokens are
masked out of every statistic. A dataset that cannot be read is an error, never a
silent substitute.
"""

from __future__ import annotations

import gzip
import json
import lzma
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interpscore.errors import SpecError
from interpscore.subjects.paths import bundled_corpus
from interpscore.subjects.tokens import boundary_ids, special_ids

BUNDLED = "bundled"
TEXT_COLUMNS = ("text", "content", "sentence")


@dataclass(frozen=True)
class TokenWindow:
    """Token ids (n_seq, context_len) and the mask of special-token positions."""

    tokens: torch.Tensor
    special: torch.Tensor
    dataset: str

    @property
    def n_sequences(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def context_len(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def n_positions(self) -> int:
        return int(self.tokens.numel())

    @property
    def n_tokens(self) -> int:
        """Positions that enter the statistics (special tokens excluded)."""
        return int((~self.special).sum())

    def head(self, n_sequences: int) -> TokenWindow:
        """The first ``n_sequences`` rows (a smaller window packed from the same text)."""
        return TokenWindow(self.tokens[:n_sequences], self.special[:n_sequences], self.dataset)

    def describe(self) -> dict[str, Any]:
        """What a report says about the window behind a metric."""
        return {
            "dataset": self.dataset,
            "n_sequences": self.n_sequences,
            "context_len": self.context_len,
            "n_positions": self.n_positions,
            "n_tokens": self.n_tokens,
        }


def _open_text(path: Path):
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _text_of(record: dict[str, Any], source: str) -> str:
    for column in TEXT_COLUMNS:
        if isinstance(record.get(column), str):
            return record[column]
    raise SpecError(
        f"Dataset {source} has no text column (looked for {', '.join(TEXT_COLUMNS)}; "
        f"found {', '.join(map(str, record)) or 'none'}).",
        "rename the text column to 'text'.",
    )


def _iter_jsonl(path: Path) -> Iterator[str]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecError(
                    f"Line {number} of {path} is not JSON ({exc.msg}).", "fix or remove that line."
                ) from exc
            yield _text_of(record, str(path))


def _iter_txt(path: Path) -> Iterator[str]:
    with _open_text(path) as handle:
        paragraph: list[str] = []
        for line in handle:
            if line.strip():
                paragraph.append(line.rstrip("\n"))
            elif paragraph:
                yield "\n".join(paragraph)
                paragraph = []
        if paragraph:
            yield "\n".join(paragraph)


def _iter_datasets_file(path: Path) -> Iterator[str]:
    import datasets

    builder = {".parquet": "parquet", ".csv": "csv"}.get(path.suffix, "json")
    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train")
    except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as exc:
        raise SpecError(f"Cannot read dataset file {path}: {exc}.", "check the file.") from exc
    for record in table:
        yield _text_of(record, str(path))


def _iter_hub(spec: str) -> Iterator[str]:
    import datasets

    name, _, split = spec.partition("@")
    repo, _, config = name.partition(":")
    try:
        stream = datasets.load_dataset(repo, config or None, split=split or "train", streaming=True)
        for record in stream:
            yield _text_of(record, spec)
    except (OSError, ValueError, ConnectionError, FileNotFoundError) as exc:
        raise SpecError(
            f"Cannot load dataset {spec!r} from the Hugging Face hub ({str(exc).splitlines()[0]}).",
            "pass a local .txt/.jsonl/.parquet file with --dataset, or omit --dataset to use "
            "the bundled corpus.",
        ) from exc


def iter_texts(dataset: str) -> Iterator[str]:
    """Documents of a dataset spec, in their stored order."""
    if dataset == BUNDLED:
        path = bundled_corpus()
        if not path.is_file():
            raise SpecError(
                f"The bundled corpus {path} is missing.", "run: python fixtures/build_corpus.py"
            )
        return _iter_jsonl(path)
    path = Path(dataset).expanduser()
    if path.exists():
        suffixes = [s for s in path.suffixes if s not in (".xz", ".gz")]
        kind = suffixes[-1] if suffixes else ""
        if kind == ".txt":
            return _iter_txt(path)
        if kind in (".jsonl", ".json") and path.suffix in (".xz", ".gz"):
            return _iter_jsonl(path)
        if kind in (".jsonl", ".json", ".parquet", ".csv"):
            return _iter_datasets_file(path)
        raise SpecError(
            f"Dataset file {path} has an unknown type.",
            "use .txt, .jsonl, .json, .parquet or .csv (jsonl may be .xz/.gz compressed).",
        )
    if dataset.startswith((".", "/", "~")):
        raise SpecError(f"Dataset file {dataset} does not exist.", "check the --dataset path.")
    return _iter_hub(dataset)


def pack_tokens(
    tokenizer: Any,
    texts: Iterable[str],
    n_positions: int,
    context_len: int,
    dataset: str,
    chunk_docs: int = 256,
) -> TokenWindow:
    """Tokenize documents into ``ceil(n_positions / context_len)`` rows with BOS in front.

    Raises when the dataset holds fewer tokens than asked for, rather than returning less.
    """
    if context_len < 2:
        raise SpecError(f"--context-len {context_len} is too short.", "use at least 2.")
    if n_positions < context_len:
        raise SpecError(
            f"--tokens {n_positions} is smaller than one context of {context_len}.",
            "raise --tokens or lower --context-len.",
        )
    n_rows = -(-n_positions // context_len)
    body = context_len - 1
    needed = n_rows * body
    bos, eos = boundary_ids(tokenizer)
    stream: list[int] = []
    batch: list[str] = []
    iterator = iter(texts)
    while len(stream) < needed:
        batch = [t for _, t in zip(range(chunk_docs), iterator, strict=False)]
        if not batch:
            break
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(eos)
    if len(stream) < needed:
        available = (len(stream) // body) * context_len
        raise SpecError(
            f"Dataset {dataset} holds only about {available} token positions at context "
            f"{context_len}; {n_positions} were asked for.",
            f"lower --tokens to at most {available} or use a larger dataset.",
        )
    rows = torch.tensor(stream[:needed], dtype=torch.long).view(n_rows, body)
    tokens = torch.cat([torch.full((n_rows, 1), bos, dtype=torch.long), rows], dim=1)
    special = torch.isin(tokens, torch.tensor(special_ids(tokenizer), dtype=torch.long))
    return TokenWindow(tokens=tokens, special=special, dataset=dataset)
