"""Corpora and token windows: formats, packing, masks, and errors instead of fallbacks."""

from __future__ import annotations

import json
import lzma

import pytest

from interpscore.errors import SpecError
from interpscore.subjects.data import BUNDLED, iter_texts, pack_tokens


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer


def test_bundled_corpus_is_readable():
    first = next(iter_texts(BUNDLED))
    assert isinstance(first, str)
    assert len(first) > 20


@pytest.mark.parametrize("kind", ["txt", "jsonl", "jsonl.xz", "parquet", "csv"])
def test_local_file_formats(tmp_path, kind):
    docs = ["first document here.", "second one, a bit longer.", "third."]
    path = tmp_path / f"data.{kind}"
    if kind == "txt":
        path.write_text("\n\n".join(docs))
    elif kind == "jsonl":
        path.write_text("\n".join(json.dumps({"text": d}) for d in docs))
    elif kind == "jsonl.xz":
        with lzma.open(path, "wt") as handle:
            handle.write("\n".join(json.dumps({"text": d}) for d in docs))
    else:
        import pandas as pd

        frame = pd.DataFrame({"text": docs})
        frame.to_parquet(path) if kind == "parquet" else frame.to_csv(path, index=False)
    assert list(iter_texts(str(path))) == docs


def test_missing_text_column_is_an_error(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(SpecError, match="no text column"):
        list(iter_texts(str(path)))


def test_missing_file_and_unreachable_hub_are_errors(offline_hub):
    with pytest.raises(SpecError, match="does not exist"):
        iter_texts("./nope.jsonl")
    with pytest.raises(SpecError, match="Cannot load dataset 'nobody/nothing'"):
        list(iter_texts("nobody/nothing"))


def test_packing_puts_bos_first_and_masks_special_tokens(tokenizer):
    docs = ["alpha beta gamma delta " * 3, "epsilon zeta eta " * 30]
    window = pack_tokens(tokenizer, docs, n_positions=100, context_len=32, dataset="t")
    assert window.tokens.shape == (4, 32)
    assert (window.tokens[:, 0] == tokenizer.bos_token_id).all()
    assert window.special[:, 0].all()
    eos = window.tokens == tokenizer.eos_token_id
    assert eos.any()
    assert (window.special == (eos | (window.tokens == tokenizer.bos_token_id))).all()
    assert window.n_tokens == int((~window.special).sum())


def test_too_small_dataset_says_how_much_there_is(tokenizer):
    with pytest.raises(SpecError, match="holds only about"):
        pack_tokens(tokenizer, ["tiny text"], n_positions=4096, context_len=64, dataset="t")


def test_packing_is_deterministic(tokenizer, tiny_corpus):
    a = pack_tokens(tokenizer, iter_texts(str(tiny_corpus)), 1024, 64, "t")
    b = pack_tokens(tokenizer, iter_texts(str(tiny_corpus)), 1024, 64, "t")
    assert (a.tokens == b.tokens).all()
