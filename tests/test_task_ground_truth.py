"""Task ground truth: the pure math on hand-computed cases, the task files, and the whole
family on a model with a planted attribute, where the answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import subjects
import torch

from interpscore.errors import SpecError
from interpscore.evaluation.evaluator import Evaluator
from interpscore.evaluation.settings import RunSettings
from interpscore.metrics import task_ground_truth as gt
from interpscore.subjects.gt_tasks import FORMAT, gt_task_specs, load_gt_tasks
from interpscore.subjects.loading import parse_sae_spec
from interpscore.suites.task_ground_truth import TaskGroundTruthSettings, control_metric

SUITE = "task_ground_truth"


# --- pure functions ---------------------------------------------------------------------


def test_supervised_dictionary_by_hand():
    x = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    d = gt.fit_supervised_dictionary(x, {"v": np.array([0, 0, 1, 1])}, {"v": ("p", "q")})
    np.testing.assert_allclose(d.mean, [1.0, 1.5])
    np.testing.assert_allclose(d.features["v"], [[1.0, -1.5], [-1.0, 1.5]])
    np.testing.assert_allclose(d.reconstruct({"v": np.array([0, 1])}), [[2.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(d.edit(x[:1], "v", np.array([0]), np.array([1])), [[-1.0, 3.0]])


def test_a_value_without_rows_has_no_feature():
    d = gt.fit_supervised_dictionary(np.ones((2, 3)), {"v": np.array([0, 0])}, {"v": ("p", "q")})
    np.testing.assert_array_equal(d.features["v"][1], np.zeros(3))


def test_fractions_by_hand_and_per_resample():
    clean, base = np.array([4.0, 2.0]), np.array([0.0, 1.0])
    patched = np.array([3.0, 1.5])
    assert gt.kept_fraction(patched, clean, base) == pytest.approx((3 + 0.5) / (4 + 1))
    weights = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    np.testing.assert_allclose(
        gt.kept_fraction(patched, clean, base, weights), [3 / 4, 0.5 / 1, 3.5 / 5]
    )
    target = np.array([-4.0, -2.0])
    assert gt.moved_fraction(clean, np.array([0.0, 0.0]), target) == pytest.approx(0.5)
    assert gt.moved_fraction(clean, target, target) == pytest.approx(1.0)


def test_greedy_edit_latents_builds_the_target():
    w_dec = np.eye(3)
    steps = np.ones((1, 3))
    chosen = gt.greedy_edit_latents(np.array([[0.0, 2.0, 1.0]]), steps, w_dec, 2)
    assert chosen.tolist() == [[1, 2]]
    # a latent whose step points the wrong way is never worth taking first
    steps = np.array([[1.0, -1.0, 1.0]])
    assert gt.greedy_edit_latents(np.array([[0.0, 2.0, 1.0]]), steps, w_dec, 1).tolist() == [[2]]


def _brute_best_f1(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    best = []
    for column in scores.T:
        cuts = np.concatenate([np.unique(column) - 1e-9, [column.max() + 1]])
        best.append(max(float(gt.f1(column > t, y)) for t in cuts))
    return np.array(best)


@pytest.mark.parametrize("seed", range(5))
def test_best_thresholds_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(30, 6)).astype(float)  # many ties
    y = rng.random(30) < 0.4
    threshold, best = gt.best_thresholds(scores, y)
    np.testing.assert_allclose(best, _brute_best_f1(scores, y))
    for j in range(scores.shape[1]):  # the threshold achieves the F1 it reports
        assert gt.f1(scores[:, j] > threshold[j], y) == pytest.approx(best[j])


def test_weighted_f1_equals_f1_of_repeated_rows():
    predicted = np.array([True, True, False, False])
    y = np.array([True, False, True, False])
    weights = np.array([[3.0, 1.0, 0.0, 2.0]])
    repeated = np.repeat(np.arange(4), [3, 1, 0, 2])
    assert gt.f1(predicted, y, weights)[0] == pytest.approx(
        float(gt.f1(predicted[repeated], y[repeated]))
    )
    assert gt.f1(np.zeros(3, bool), np.zeros(3, bool)) == 0.0


def test_latents_to_reach():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.5
    noise = rng.normal(size=(200, 40))
    planted = noise.copy()
    planted[:, 7] += 6 * y
    ranking = np.r_[7, np.delete(np.arange(40), 7)]
    needed, scores = gt.latents_to_reach(planted[:100], y[:100], planted[100:], y[100:], ranking)
    assert needed == 1
    assert scores[1] >= 0.9
    needed, scores = gt.latents_to_reach(noise[:100], y[:100], noise[100:], y[100:], ranking)
    assert needed == gt.NOT_REACHED
    assert list(scores) == list(gt.DETECTOR_KS)


# --- task files ---------------------------------------------------------------------------


def test_bundled_tasks_are_consistent_counterfactual_pairs():
    tasks = load_gt_tasks(("ioi", "capitals", "agreement"))
    assert [t.name for t in tasks] == ["ioi", "capitals", "agreement"]
    for task in tasks:
        splits = {x["split"] for x in task.items}
        assert splits == {"train", "test"}
        for x in task.items:
            partner = task.items[x["pair"]]
            assert (partner["answer"], partner["foil"]) == (x["foil"], x["answer"])
            controlled = task.controlled
            assert partner["attributes"][controlled] != x["attributes"][controlled]
            word = x["text"][slice(*x["span"])]
            assert word != partner["text"][slice(*partner["span"])]  # the read word differs
            assert word.isalpha()
        test_templates = {x["text"] for x in task.items if x["split"] == "test"}
        assert not test_templates & {x["text"] for x in task.items if x["split"] == "train"}


def _write_tasks(path: Path, tasks: list[dict]) -> Path:
    path.write_text(json.dumps({"format": FORMAT, "tasks": tasks}))
    return path


def _item(text: str, word: str, answer: str, foil: str, split: str, pair: int, value: str):
    at = text.rindex(word)
    return {
        "text": text,
        "span": [at, at + len(word)],
        "answer": answer,
        "foil": foil,
        "split": split,
        "attributes": {"value": value},
        "pair": pair,
    }


GOOD = [
    _item("a x", "x", " p", " q", "train", 1, "x"),
    _item("a y", "y", " q", " p", "train", 0, "y"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t["items"][0].update(pair=0), "do not name each other"),
        (lambda t: t["items"][0].update(split="val"), "do not name each other"),
        (lambda t: t["items"][0].update(span=[2, 9]), "outside its text"),
        (lambda t: t["items"][0].update(span="2-3"), "not \\[start, end\\]"),
        (lambda t: t["items"][1].pop("pair"), "do not name each other"),
        (lambda t: t["items"][0].pop("foil"), "has no foil"),
        (lambda t: t.update(controlled="colour"), "controls 'colour'"),
        (lambda t: t["items"][1].update(attributes={"other": "y"}), "has attributes"),
    ],
)
def test_bad_task_files_name_the_problem(tmp_path, change, message):
    task = {"name": "t", "controlled": "value", "items": json.loads(json.dumps(GOOD))}
    change(task)
    path = _write_tasks(tmp_path / "t.json", [task])
    with pytest.raises(SpecError, match=message) as err:
        load_gt_tasks((f"file:{path}",))
    assert "\n" not in str(err.value)


def test_unreadable_task_files_and_unknown_names(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(SpecError, match="Cannot read task file"):
        load_gt_tasks((f"file:{tmp_path / 'x.json'}",))
    (tmp_path / "y.json").write_text(json.dumps({"format": "other", "tasks": []}))
    with pytest.raises(SpecError, match="format"):
        load_gt_tasks((f"file:{tmp_path / 'y.json'}",))
    with pytest.raises(SpecError, match="Unknown ground-truth task"):
        gt_task_specs("ioi,nope")
    assert gt_task_specs("ioi, capitals") == ("ioi", "capitals")


# --- a model with a planted attribute -----------------------------------------------------

HOOK = "blocks.0.hook_resid_post"
N_PAIRS, N_TRAIN_PAIRS = 24, 16
SIGNAL = 1.0


def _word_tokenizer(words: list[str]):
    """A fast word-level tokenizer over ``words`` (one token per word, with offsets)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {w: i for i, w in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A 2-layer Llama whose layers add nothing (residual = embedding) and whose head reads
    one direction, d = e_0: words of value a carry +d, their partners of value b carry -d
    on the same base vector, and the answer token A (B) has head row +d (-d). The read
    position is the last token, so patching it changes the answer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("planted")
    attribute_words = [f"w{i}" for i in range(2 * N_PAIRS)]
    answer_a, answer_b, context = "yes", "no", "the"
    tok = _word_tokenizer([answer_a, answer_b, context, "a", *attribute_words])
    words = [answer_a, answer_b, context, *attribute_words]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=subjects.D_MODEL,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    ids = {w: tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in words}
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        emb.normal_()
        emb[:, 0] = 0.0
        for i in range(N_PAIRS):
            a, b = ids[attribute_words[2 * i]], ids[attribute_words[2 * i + 1]]
            emb[b] = emb[a]
            emb[a, 0], emb[b, 0] = SIGNAL, -SIGNAL
        head = model.lm_head.weight
        head.normal_(std=0.01)
        head[ids[answer_a]] = 0.0
        head[ids[answer_b]] = 0.0
        head[ids[answer_a], 0], head[ids[answer_b], 0] = 10.0, -10.0
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    items = []
    for i in range(N_PAIRS):
        split = "train" if i < N_TRAIN_PAIRS else "test"
        for ctx_word in (context, "a"):
            a, b = attribute_words[2 * i], attribute_words[2 * i + 1]
            n = len(items)
            items.append(
                _item(f"{ctx_word} {a}", a, f" {answer_a}", f" {answer_b}", split, n + 1, "a")
            )
            items.append(_item(f"{ctx_word} {b}", b, f" {answer_b}", f" {answer_a}", split, n, "b"))
    task = {"name": "planted", "controlled": "value", "items": items}
    swapped = json.loads(json.dumps(task))
    swapped["name"] = "unsolved"
    for x in swapped["items"]:
        x["answer"], x["foil"] = x["foil"], x["answer"]
    identity = subjects.save_sae(
        subjects.identity_sae(), root / "planted-sae", str(model_dir), HOOK
    )
    return {
        "task": _write_tasks(root / "planted.json", [task]),
        "unsolved": _write_tasks(root / "unsolved.json", [swapped]),
        "sae": identity,
    }


def _evaluator(corpus: Path, sae: Path, tasks: Path) -> Evaluator:
    settings = RunSettings(
        dataset=str(corpus), tokens=512, context_len=64, bootstrap=200, show_progress=False
    )
    suite = {SUITE: TaskGroundTruthSettings(tasks=(f"file:{tasks}",))}
    return Evaluator(settings, [parse_sae_spec(f"planted={sae}")], suite_settings=suite)


def test_planted_attribute_known_answers(planted, tiny_corpus):
    """The SAE with a latent equal to the planted direction (an identity SAE: latent 0 is
    relu(x_0), latent 64 is relu(-x_0)) reconstructs exactly (sufficiency 1), moves the
    answer halfway with one latent and fully with two (the edit must turn one latent off
    and the other on), and detects each value with one latent (F1 1). Its random-init
    control does not control or detect the attribute. (Its sufficiency is not asserted: a
    tied random ReLU SAE reconstructs roughly a scaled copy of its input, and the head reads
    through RMSNorm, which ignores scale; it measures about 0.8 here.)"""
    evaluator = _evaluator(tiny_corpus, planted["sae"], planted["task"])
    control = evaluator.random_control_ref("planted")
    value = lambda name, ref="planted": evaluator.value(ref, name)  # noqa: E731
    sufficiency = value("task_gt_sufficiency")
    assert sufficiency.value == pytest.approx(1.0, abs=1e-4)
    info = sufficiency.details["task_info"]["planted"]
    assert info["accuracy"] == 1.0
    assert info["ablation_effect"] > 0.99
    assert sufficiency.details["tasks"]["planted"]["supervised"] > 0.5
    assert value(control_metric(1)).value == pytest.approx(0.5, abs=1e-3)
    for k in (2, 4, 8):
        assert value(control_metric(k)).value == pytest.approx(1.0, abs=1e-3)
    assert value("task_gt_control@k2").details["tasks"]["planted"]["supervised"] > 0.5
    assert value("task_gt_detection_f1").value == 1.0
    assert value("task_gt_latents_f1_90").value == 1.0
    assert value(control_metric(2), control).value < 0.2
    assert value("task_gt_detection_f1", control).value < 0.8
    assert value("task_gt_latents_f1_90", control).value == gt.NOT_REACHED
    record = evaluator.measure("planted", "task_gt_sufficiency")
    assert record.controls["supervised"].kind == "ceiling"
    assert record.controls["planted#random-init"].breakdown.keys() == {"planted"}
    assert record.ci95[0] - 1e-6 <= record.value <= record.ci95[1] + 1e-6


def test_a_task_the_model_does_not_solve_is_not_applicable(planted, tiny_corpus):
    evaluator = _evaluator(tiny_corpus, planted["sae"], planted["unsolved"])
    record = evaluator.measure("planted", "task_gt_sufficiency")
    assert record.status == "not_applicable"
    reason = record.details["reason"]
    assert "does not solve unsolved: test accuracy 0.000" in reason
    assert record.details["tasks"]["unsolved"]["accuracy"] == 0.0


def test_the_controls_values_come_back_from_the_value_cache(planted, tiny_corpus, monkeypatch):
    """A second run (same data, same cache: the per-test one) reads the random-init
    control's values instead of recomputing them, and they are the first run's exactly."""
    import interpscore.suites.task_ground_truth as family

    computed = []
    real = family.sae_task_values
    monkeypatch.setattr(
        family, "sae_task_values", lambda task, sae: computed.append(task.name) or real(task, sae)
    )
    names = ["task_gt_sufficiency", control_metric(2), "task_gt_detection_f1"]
    runs = []
    for _ in ("cold", "warm"):
        evaluator = _evaluator(tiny_corpus, planted["sae"], planted["task"])
        control = evaluator.random_control_ref("planted")
        runs.append({name: evaluator.value(control, name) for name in names})
        runs[-1]["calls"] = len(computed)
    cold, warm = runs
    assert (cold.pop("calls"), warm.pop("calls")) == (1, 1)  # the warm run computed nothing
    for name in names:
        assert warm[name].value == cold[name].value
        assert warm[name].details == cold[name].details
        np.testing.assert_array_equal(warm[name].replicates, cold[name].replicates)
        assert warm[name].ceilings.keys() == cold[name].ceilings.keys()


def test_the_task_runs_come_back_from_the_value_cache(planted, tiny_corpus, monkeypatch):
    """A second run reads each task's clean run and its SAE-free patched runs (mean-ablated,
    counterfactual, supervised) from the value cache: the model runs only the SAE's own
    patched prompts, and every value is the first run's exactly."""
    from interpscore.subjects.gt_tasks import TaskRun

    calls = {"clean": 0, "patched": 0}
    real_clean, real_diffs = TaskRun.run_clean, TaskRun.logit_diffs

    def run_clean(self):
        calls["clean"] += 1
        return real_clean(self)

    def logit_diffs(self, rows, replacement, desc):
        calls["patched"] += 1
        return real_diffs(self, rows, replacement, desc)

    monkeypatch.setattr(TaskRun, "run_clean", run_clean)
    monkeypatch.setattr(TaskRun, "logit_diffs", logit_diffs)
    names = ["task_gt_sufficiency", *(control_metric(k) for k in (1, 2, 4, 8))]
    runs, counts = [], []
    for _ in ("cold", "warm"):
        before = dict(calls)
        evaluator = _evaluator(tiny_corpus, planted["sae"], planted["task"])
        runs.append({name: evaluator.value("planted", name) for name in names})
        counts.append({k: calls[k] - before[k] for k in calls})
    sae_runs = 1 + 4  # sufficiency, then control at each k
    assert counts[0] == {"clean": 1, "patched": 4 + sae_runs}
    assert counts[1] == {"clean": 0, "patched": sae_runs}
    cold, warm = runs
    for name in names:
        assert warm[name].value == cold[name].value
        assert warm[name].details == cold[name].details
        np.testing.assert_array_equal(warm[name].replicates, cold[name].replicates)
        ceiling = "supervised"
        assert warm[name].ceilings[ceiling].value == cold[name].ceilings[ceiling].value
