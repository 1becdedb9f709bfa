"""TextRepresentation and Seq2SeqCaptioner end to end on tiny BERT / T5 models saved to disk."""
import logging
import shutil

import numpy as np
import pytest
import torch

from pertdit.errors import RepresentationError
from pertdit.perturbation import RDKitDescription, Seq2SeqCaptioner, TextRepresentation
from pertdit.perturbation import text as text_module

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"]
DOSES = [0.37, 10.0, 3.33]


def _reference_embedding(model_dir, text: str) -> np.ndarray:
    """Last hidden state of one text straight from transformers, no batching, no padding."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0].numpy()


def test_tokens_are_description_then_dose_prompt_with_mask(text_rep, tiny_bert_dir):
    rep = text_rep()
    features = rep.encode(SMILES, DOSES)
    counts = rep.token_counts(SMILES, DOSES)
    assert features.tokens.shape == (3, counts.max(), 32) and features.tokens.dtype == np.float32
    np.testing.assert_array_equal(features.mask.sum(axis=1), counts)
    assert features.mask[:, 0].all() and not features.tokens[~features.mask].any()  # real tokens first
    description = RDKitDescription().describe(SMILES[1])
    expected = np.concatenate(
        [_reference_embedding(tiny_bert_dir, description),
         _reference_embedding(tiny_bert_dir, "The dosage is 10.0 micromoles.")]
    )
    np.testing.assert_allclose(features.tokens[1, : counts[1]], expected, atol=1e-5)
    assert rep.dim == 32 and rep.name == "text"


def test_prompt_rounds_the_dose_like_the_authors(text_rep):
    rep = text_rep()
    assert rep.prompt(0.37) == "The dosage is 0.37 micromoles."
    assert rep.prompt(np.float32(0.123456)) == "The dosage is 0.1235 micromoles."
    assert rep.prompt(10) == "The dosage is 10.0 micromoles."


def test_pooled_is_the_masked_mean_of_the_token_sequence(text_rep):
    full = text_rep().encode(SMILES, DOSES)
    pooled = text_rep(pooled=True)
    features = pooled.encode(SMILES, DOSES)
    assert features.tokens.shape == (3, 1, 32) and features.mask.all() and pooled.name == "text_pooled"
    np.testing.assert_allclose(features.tokens[:, 0], full.pooled(), atol=1e-6)


def test_wo_dosage_has_no_prompt_and_ignores_the_dose(text_rep):
    rep = text_rep(dose_prompt=False)
    features = rep.encode(SMILES, DOSES)
    assert rep.name == "text_wo_dosage"
    np.testing.assert_array_equal(features.tokens[0], features.tokens[2])  # same drug, other dose
    with_prompt = text_rep().token_counts(SMILES, DOSES)
    assert (features.mask.sum(axis=1) < with_prompt).all()
    assert rep.cache_key() != text_rep().cache_key()


def test_embeddings_are_deterministic_and_independent_of_batching(text_rep):
    a = text_rep(batch_size=1).encode(SMILES, DOSES)
    b = text_rep(batch_size=16).encode(SMILES, DOSES)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(a.tokens, b.tokens, atol=1e-5)
    again = text_rep().encode(SMILES, DOSES).tokens
    np.testing.assert_array_equal(text_rep().encode(SMILES, DOSES).tokens, again)


def test_auto_falls_back_to_rdkit_and_says_so_once(text_rep, monkeypatch, caplog):
    monkeypatch.setattr(text_module, "_FALLBACK_LOGGED", set())
    with caplog.at_level(logging.WARNING, logger="pertdit.perturbation.text"):
        first, second = text_rep(describer="auto"), text_rep(describer="auto")
    assert first.describer_name == second.describer_name == "rdkit"
    messages = [r.getMessage() for r in caplog.records if "describer=auto" in r.getMessage()]
    assert len(messages) == 1 and "pertdit-tests/no-such-captioner" in messages[0]
    assert first.cache_key() == text_rep(describer="rdkit").cache_key()


def test_captioner_describes_with_the_seq2seq_model(text_rep, tiny_t5_dir):
    captioner = {"model_id": "tiny-t5", "local_dir": str(tiny_t5_dir), "max_length": 12, "num_beams": 2}
    rep = text_rep(describer="auto", captioner=captioner)
    assert rep.describer_name == "captioner"
    direct = Seq2SeqCaptioner(**captioner, batch_size=1).caption(SMILES)
    assert rep.describe(SMILES) == direct and direct[0] == direct[2]
    features = rep.encode(SMILES, DOSES)
    np.testing.assert_array_equal(features.mask.sum(axis=1), rep.token_counts(SMILES, DOSES))
    assert rep.cache_key() != text_rep(describer="rdkit").cache_key()


def test_captions_are_kept_on_disk(text_rep, tiny_t5_dir, tmp_path, monkeypatch):
    captioner = {"model_id": "tiny-t5", "local_dir": str(tiny_t5_dir), "max_length": 8, "num_beams": 1}
    first = text_rep(describer="captioner", captioner=captioner, cache_dir=str(tmp_path)).describe(SMILES)
    monkeypatch.setattr(Seq2SeqCaptioner, "caption", lambda self, s: pytest.fail("captioned again"))
    again = text_rep(describer="captioner", captioner=captioner, cache_dir=str(tmp_path)).describe(SMILES)
    assert again == first and list((tmp_path / "descriptions").glob("*.json"))


def test_missing_weights_name_the_model_and_the_fix(tiny_bert_dir, no_captioner, tmp_path):
    with pytest.raises(RepresentationError) as err:
        TextRepresentation(encoder_id="pertdit-tests/no-such-encoder", captioner=no_captioner)
    assert "'pertdit-tests/no-such-encoder'" in str(err.value)
    assert "encoder_local_dir" in str(err.value) and "HF_HOME" in str(err.value)
    with pytest.raises(RepresentationError, match="no-such-captioner.*captioner.local_dir"):
        TextRepresentation(
            describer="captioner", captioner=no_captioner, encoder_local_dir=str(tiny_bert_dir)
        )
    with pytest.raises(RepresentationError, match="not a directory with a config.json"):
        TextRepresentation(encoder_local_dir=str(tmp_path / "empty"), captioner=no_captioner)


def test_weights_resolve_from_the_hugging_face_cache(tiny_bert_dir, no_captioner, tmp_path, monkeypatch):
    import huggingface_hub.constants

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--pertdit-tests--tiny-bert"
    shutil.copytree(tiny_bert_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    rep = TextRepresentation(describer="rdkit", captioner=no_captioner, encoder_id="pertdit-tests/tiny-bert")
    assert rep.encoder_path == repo / "snapshots" / commit
    assert rep.encode(SMILES[:1], DOSES[:1]).tokens.shape[-1] == 32


def test_invalid_smiles_and_negative_dose_are_errors(text_rep):
    rep = text_rep()
    with pytest.raises(RepresentationError, match="C1CC"):
        rep.encode(["C1CC"], [1.0])
    with pytest.raises(RepresentationError, match="negative"):
        rep.encode(["CCO"], [-0.5])
