"""embed_conditions / embed_dataset: unique conditions once, float16 memory map, hits by key, corruption,
text stored once per description and per prompt."""
import json
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from pertdit.perturbation import (
    RDKitFingerprint,
    cache_entry,
    embed_conditions,
    embed_dataset,
    load_embeddings,
)
from pertdit.perturbation import cache as cache_module
from pertdit.perturbation.cache import CacheEntryError

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O", "CCN"]
DOSES = [0.37, 10.0, 0.37, 3.33, 1.11]


class CountingFingerprint(RDKitFingerprint):
    """Counts the conditions it encodes."""

    encoded = 0

    def encode(self, smiles, doses):
        type(self).encoded += len(smiles)
        return super().encode(smiles, doses)


@pytest.fixture
def counting():
    CountingFingerprint.encoded = 0
    return CountingFingerprint()


def test_unique_conditions_are_embedded_once_into_a_float16_memory_map(counting, tmp_path):
    features = embed_conditions(counting, SMILES, DOSES, tmp_path)
    assert counting.encoded == 4 and len(features) == 4
    assert isinstance(features.tokens, np.memmap) and features.tokens.dtype == np.float16
    assert features.pairs == sorted(set(zip(SMILES, DOSES)))
    direct = RDKitFingerprint().encode(SMILES, DOSES).tokens
    np.testing.assert_allclose(features.tokens[features.lookup(SMILES, DOSES)], direct, rtol=1e-3)


def test_a_second_run_hits_the_cache(counting, tmp_path):
    first = embed_conditions(counting, SMILES, DOSES, tmp_path)
    again = embed_conditions(counting, list(reversed(SMILES)), list(reversed(DOSES)), tmp_path)
    assert counting.encoded == 4  # nothing encoded the second time; row order does not matter
    np.testing.assert_array_equal(first.tokens, again.tokens)
    assert len(list(tmp_path.iterdir())) == 1


def test_other_conditions_or_options_get_their_own_entry(tmp_path):
    embed_conditions(RDKitFingerprint(), SMILES, DOSES, tmp_path)
    embed_conditions(RDKitFingerprint(), SMILES[:2], DOSES[:2], tmp_path)
    embed_conditions(RDKitFingerprint(n_bits=512), SMILES, DOSES, tmp_path)
    assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize("damage", ["truncate_tokens", "other_key", "no_header", "bad_header", "no_mask"])
def test_a_damaged_entry_is_rebuilt_with_a_warning(counting, tmp_path, caplog, damage):
    entry = cache_entry(counting, SMILES, DOSES, tmp_path)
    good = np.array(load_embeddings(entry).tokens)
    tokens, header = entry / "tokens.npy", entry / "header.json"
    if damage == "truncate_tokens":
        tokens.write_bytes(tokens.read_bytes()[:-100])
    elif damage == "other_key":
        content = json.loads(header.read_text())
        header.write_text(json.dumps({**content, "key": "0" * 64}))
    elif damage == "no_header":
        header.unlink()
    elif damage == "bad_header":
        header.write_text("{not json")
    else:
        (entry / "mask.npy").unlink()
    with caplog.at_level(logging.WARNING, logger="pertdit.perturbation.cache"):
        features = embed_conditions(counting, SMILES, DOSES, tmp_path)
    assert "rebuilding" in caplog.text and counting.encoded == 8
    np.testing.assert_array_equal(features.tokens, good)


def test_load_embeddings_refuses_another_key_and_on_demand_a_changed_file(tmp_path):
    entry = cache_entry(RDKitFingerprint(), SMILES, DOSES, tmp_path)
    key = json.loads((entry / "header.json").read_text())["key"]
    load_embeddings(entry, expected_key=key)
    with pytest.raises(CacheEntryError, match="built for key"):
        load_embeddings(entry, expected_key="1" * 64)
    data = bytearray((entry / "mask.npy").read_bytes())
    data[-1] ^= 1
    (entry / "mask.npy").write_bytes(bytes(data))
    load_embeddings(entry)  # same size and shape: the cheap check on load passes
    with pytest.raises(CacheEntryError, match="checksum of mask.npy"):
        load_embeddings(entry, verify=True)


def test_a_cache_hit_reads_no_file_whole(counting, tmp_path, monkeypatch):
    """The key (representation, conditions) and sizes/shapes validate an entry; checksums only on demand."""
    embed_conditions(counting, SMILES, DOSES, tmp_path)
    monkeypatch.setattr(cache_module, "_checksum", lambda path: pytest.fail(f"read {path} whole"))
    embed_conditions(counting, SMILES, DOSES, tmp_path)
    assert counting.encoded == 4


def test_verify_rebuilds_an_entry_whose_bytes_changed(counting, tmp_path, caplog):
    entry = cache_entry(counting, SMILES, DOSES, tmp_path)
    good = np.array(load_embeddings(entry).tokens)
    data = bytearray((entry / "tokens.npy").read_bytes())
    data[-1] ^= 0xFF
    (entry / "tokens.npy").write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="pertdit.perturbation.cache"):
        cache_entry(counting, SMILES, DOSES, tmp_path, verify=True)
    assert "checksum of tokens.npy" in caplog.text and counting.encoded == 8
    np.testing.assert_array_equal(load_embeddings(entry, verify=True).tokens, good)


def test_without_a_cache_folder_nothing_is_written(counting, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    features = embed_conditions(counting, SMILES, DOSES)
    assert features.tokens.dtype == np.float16 and len(features) == 4 and not list(tmp_path.iterdir())


def test_text_tokens_are_the_encoded_conditions(text_rep, tmp_path):
    rep = text_rep()
    features = embed_conditions(rep, SMILES, DOSES, tmp_path, chunk_size=1)  # one description per chunk
    counts = rep.token_counts([s for s, _ in features.pairs], [d for _, d in features.pairs])
    assert features.tokens.shape == (4, counts.max(), 32)
    np.testing.assert_array_equal(features.mask.sum(axis=1), counts)
    direct = rep.encode([s for s, _ in features.pairs], [d for _, d in features.pairs])
    np.testing.assert_allclose(features.tokens, direct.tokens.astype(np.float16), atol=1e-2)
    hit = embed_conditions(text_rep(), SMILES, DOSES, tmp_path)
    np.testing.assert_array_equal(hit.tokens, features.tokens)
    assert len(list(tmp_path.iterdir())) == 1


def test_text_stores_each_description_and_each_prompt_once(text_rep, tmp_path):
    """3 SMILES x doses 0.37, 10, 3.33, 1.11 (0.370001 prompts as 0.37): one sequence per SMILES and per prompt."""
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O", "CCN"] * 4
    doses = [0.37, 10.0, 3.33, 1.11, 0.370001, 10.0, 0.37, 3.33, 1.11, 10.0, 0.37, 3.33]
    entry = cache_entry(text_rep(), smiles, doses, tmp_path)
    header = json.loads((entry / "header.json").read_text())
    assert header["layout"] == "parts" and header["conditions"] == len(set(zip(smiles, doses)))
    assert {p["name"]: p["keys"] for p in header["parts"]} == {"description": 3, "prompt": 4}
    assert json.loads((entry / "prompt_keys.json").read_text())[0] == "The dosage is 0.37 micromoles."


def test_a_batch_is_padded_to_its_own_longest_condition(text_rep, tmp_path):
    rep = text_rep()
    features = embed_conditions(rep, SMILES, DOSES, tmp_path)
    counts = rep.token_counts([s for s, _ in features.pairs], [d for _, d in features.pairs])
    short = int(np.argmin(counts))
    tokens, mask = features.gather([short])
    assert tokens.shape == (1, counts[short], 32) and mask.all() and tokens.dtype == np.float32
    tokens, mask = features.gather([short, int(np.argmax(counts))])
    assert tokens.shape[1] == counts.max() and mask.sum(axis=1).tolist() == [counts[short], counts.max()]
    np.testing.assert_array_equal(tokens[0, counts[short]:], 0.0)


def test_embed_dataset_takes_the_treated_rows_of_an_anndata(tmp_path):
    obs = pd.DataFrame(
        {"smiles": ["", *SMILES], "dose": [0.0, *DOSES], "is_control": [True] + [False] * len(SMILES)},
        index=[f"p{i}" for i in range(len(SMILES) + 1)],
    )
    adata = ad.AnnData(X=np.zeros((len(obs), 3), np.float32), obs=obs)
    path = embed_dataset(adata, RDKitFingerprint(), tmp_path)
    features = load_embeddings(path)
    assert features.pairs == sorted(set(zip(SMILES, DOSES)))
    assert path.parent == tmp_path
