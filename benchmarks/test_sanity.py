"""Sanity assertions about the subjects themselves, run with every evaluation.

They hold for a trained model and trained SAEs; a failure marks the SAE failed in the
report, because its numbers should not be trusted until someone has looked.
"""

from __future__ import annotations

import math

import pytest

from interpscore.formula import score

pytestmark = pytest.mark.interpscore_sanity


def test_clean_cross_entropy_is_plausible_for_a_trained_model(sae, sae_id, evaluator):
    if sae.model.variant is not None:
        pytest.skip(f"{sae.model} is a randomized control: its loss is not meant to be low")
    ce = evaluator.value(sae_id, "ce_loss_clean").value
    uniform = math.log(len(evaluator.model(sae.model).tokenizer))
    # A trained LM on ordinary English text sits far below the uniform-guess loss.
    assert 0.5 < ce < 0.6 * uniform, f"clean CE {ce:.3f} nats (uniform guess {uniform:.2f})"


def _randomized_controls(sae, sae_id, evaluator) -> list[str]:
    if sae.control_of is not None:
        pytest.skip(f"{sae_id} is itself a randomized-transformer control")
    controls = [s.id for s in evaluator.loaded() if s.model.variant is not None]
    if not controls:
        pytest.skip("no randomized-transformer control SAEs in this run (see --model-controls)")
    return controls


def test_beats_randomized_transformer_controls_on_loss_recovered(sae, sae_id, evaluator):
    """loss_recovered compares only where the control's model is a language model at all.

    The ratio (CE_abl - CE_sae) / (CE_abl - CE_clean) needs a clean loss below the uniform
    guess: a re-randomized transformer predicts worse than uniform, zero-ablating its layer
    can lower its loss, and the notebook's clipping turns that into 0 or 1 (Heap et al.: CE
    loss score only means something for the trained model). Such controls are listed in an
    xfail with their numbers instead of being compared.
    """
    mine = evaluator.value(sae_id, "loss_recovered").value
    not_comparable = []
    for control in _randomized_controls(sae, sae_id, evaluator):
        theirs = evaluator.value(control, "loss_recovered").value
        clean = evaluator.value(control, "ce_loss_clean").value
        ablated = evaluator.value(control, "ce_loss_with_ablation").value
        uniform = math.log(len(evaluator.model(evaluator.sae(control).model).tokenizer))
        if clean >= uniform:
            not_comparable.append(
                f"{control} {theirs:.3f} (clean CE {clean:.2f} >= uniform {uniform:.2f} nats, "
                f"ablated {ablated:.2f})"
            )
            continue
        assert mine > theirs, f"{sae_id} {mine:.3f} <= {control} {theirs:.3f}"
    if not_comparable:
        pytest.xfail(
            f"{sae_id} {mine:.3f}; loss_recovered undefined for: " + "; ".join(not_comparable)
        )


def test_beats_randomized_transformer_controls_on_kl_div_score(sae, sae_id, evaluator):
    mine = evaluator.value(sae_id, "kl_div_score").value
    for control in _randomized_controls(sae, sae_id, evaluator):
        theirs = evaluator.value(control, "kl_div_score").value
        assert mine > theirs, f"{sae_id} {mine:.3f} <= {control} {theirs:.3f}"


def test_random_init_control_scores_lower_interpscore(sae, sae_id, evaluator):
    if not evaluator.wants_random_control(sae):
        pytest.skip("no random-init control for this SAE (--no-controls, or it is a control)")
    formula = evaluator.settings.formula
    control = evaluator.random_control_ref(sae_id)
    mine = score({c: evaluator.value(sae_id, c).value for c in formula.components}, formula)
    theirs = score({c: evaluator.value(control, c).value for c in formula.components}, formula)
    assert not mine.partial
    assert mine.value > theirs.value, f"trained {mine.value:.3f} <= random-init {theirs.value:.3f}"
