"""Conditioning on time (`condition_on_time`, beyond the paper): the condition key is (SMILES, dose, time)
when on and (SMILES, dose) when off; the off path is exactly the representation of the paper."""
from __future__ import annotations

import numpy as np
import pytest
import rdkit
import torch
from hydra.utils import instantiate

from pertdit.errors import DataError, RepresentationError
from pertdit.lit.baselines import drug_vector
from pertdit.perturbation import RDKitFingerprint, embed_conditions
from pertdit.perturbation.base import stable_hash
from pertdit.perturbation.cache import FORMAT_VERSION, entry_key
from tests.helpers import compose_train

GEFITINIB = "COCCOc1cc2ncnc(Nc3ccc(F)c(Cl)c3)c2cc1OCCOC"
SMILES = [GEFITINIB, GEFITINIB, GEFITINIB, "c1ccccc1O"]
DOSES = [2.0, 2.0, 10.0, 0.4]
TIMES = [6.0, 24.0, 24.0, 6.0]


def _bits(smiles: list[str]) -> np.ndarray:
    """FCFP4 bits straight from RDKit's generator (the reference, as docs/perturbation.md writes it)."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(
        radius=2, fpSize=1024, atomInvariantsGenerator=rdFingerprintGenerator.GetMorganFeatureAtomInvGen())
    return np.stack([generator.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) for s in smiles]).astype(np.float32)


# -- RDKit fingerprint ------------------------------------------------------------------------------------------
def test_fingerprint_off_is_byte_identical_to_the_paper_encoding():
    weight = np.log10(np.asarray(DOSES) + 1.0).astype(np.float32)
    expected = (_bits(SMILES) * weight[:, None])[:, None, :]
    for rep in (RDKitFingerprint(), RDKitFingerprint(condition_on_time=False)):
        tokens = rep.encode(SMILES, DOSES, times=TIMES).tokens  # times given, but not part of the condition
        assert tokens.dtype == np.float32 and tokens.tobytes() == expected.tobytes()
        assert rep.dim == 1024 and rep.name == "fcfp4_1024"
        # the cache key is the one the representation had before the option existed (old caches still hit)
        assert rep.cache_key() == "rdkit_fingerprint-" + stable_hash(
            {"n_bits": 1024, "radius": 2, "use_features": True, "dose_weighting": "log10p1",
             "rdkit": rdkit.__version__})


def test_fingerprint_on_appends_log2_hours_weighted_by_the_dose():
    rep = RDKitFingerprint(condition_on_time=True)
    tokens = rep.encode(SMILES, DOSES, times=TIMES).tokens[:, 0]
    weight = np.log10(np.asarray(DOSES) + 1.0)[:, None]
    assert tokens.shape == (4, 1025) and rep.dim == 1025 and rep.name == "fcfp4_1024_time"
    np.testing.assert_allclose(tokens[:, :1024], _bits(SMILES) * weight, rtol=1e-6)
    np.testing.assert_allclose(tokens[:, 1024], np.log2(TIMES) * weight[:, 0], rtol=1e-6)
    assert not np.array_equal(tokens[0], tokens[1])  # gefitinib 2 µM at 6 h and at 24 h
    np.testing.assert_array_equal(rep.encode([GEFITINIB], [0.0], times=[24.0]).tokens, 0.0)  # a vehicle: zeros
    assert rep.cache_key() != RDKitFingerprint().cache_key()


@pytest.mark.parametrize("times", [None, [6.0, float("nan"), 24.0, 6.0], [6.0, 0.0, 24.0, 6.0]])
def test_fingerprint_on_needs_a_positive_time_for_every_condition(times):
    with pytest.raises(RepresentationError, match="time"):
        RDKitFingerprint(condition_on_time=True).encode(SMILES, DOSES, times=times)


# -- text -----------------------------------------------------------------------------------------------------
def test_text_prompt_is_the_authors_sentence_when_off_and_adds_the_time_when_on(text_rep):
    off, on = text_rep(), text_rep(condition_on_time=True)
    assert off.prompt(0.37) == "The dosage is 0.37 micromoles."
    assert off.texts([GEFITINIB], [0.37], times=[24.0])[0][1] == "The dosage is 0.37 micromoles."
    assert on.prompt(0.37, 24.0) == ("The dosage is 0.37 micromoles. The profile was measured 24 hours after "
                                     "treatment.")
    assert on.prompt(10, 6) == "The dosage is 10.0 micromoles. The profile was measured 6 hours after treatment."
    assert text_rep(dose_prompt=False, condition_on_time=True).prompt(10, 6) == (
        "The profile was measured 6 hours after treatment.")
    assert on.name == "text_time" and on.cache_key() != off.cache_key()
    with pytest.raises(RepresentationError, match="time"):
        on.prompt(0.37)


def test_text_off_keeps_the_cache_key_of_the_representation_without_the_option(text_rep):
    assert text_rep().cache_key() == text_rep(condition_on_time=False, time_template="ignored {time}").cache_key()


def test_factored_text_cache_stores_one_prompt_per_dose_and_time(text_rep, tmp_path):
    rep = text_rep(condition_on_time=True)
    features = embed_conditions(rep, SMILES, DOSES, tmp_path, times=TIMES)
    assert features.parts == ("description", "prompt")
    assert len(features.tables[0]) == 2 and len(features.tables[1]) == 4  # 2 SMILES; (2, 6) (2, 24) (10, 24) (0.4, 6)
    assert sorted(features.pairs) == sorted(zip(SMILES, DOSES, TIMES))
    rows = features.lookup(SMILES, DOSES, TIMES)
    tokens, mask = features.gather(rows)
    direct = rep.encode(SMILES, DOSES, times=TIMES)
    np.testing.assert_array_equal(mask.sum(axis=1), direct.mask.sum(axis=1))
    np.testing.assert_allclose(tokens, direct.tokens[:, :tokens.shape[1]], atol=2e-3)  # float16 cache
    assert features.index[rows[0], 1] != features.index[rows[1], 1]  # gefitinib 2 µM: the 6 h and 24 h prompts
    assert not np.allclose(tokens[0], tokens[1])


# -- the condition key of the cache ----------------------------------------------------------------------------
def test_cache_key_is_smiles_dose_time_when_on_and_entries_never_mix(tmp_path):
    off = embed_conditions(RDKitFingerprint(), SMILES, DOSES, tmp_path, times=TIMES)
    on = embed_conditions(RDKitFingerprint(condition_on_time=True), SMILES, DOSES, tmp_path, times=TIMES)
    assert len(list(tmp_path.iterdir())) == 2  # two entries, one per key
    assert len(off) == 3 and all(len(p) == 2 for p in off.pairs)  # gefitinib 2 µM at 6 h and 24 h: one condition
    assert len(on) == 4 and all(len(p) == 3 for p in on.pairs)
    off_rows, on_rows = off.lookup(SMILES, DOSES, TIMES), on.lookup(SMILES, DOSES, TIMES)
    assert off_rows[0] == off_rows[1] and on_rows[0] != on_rows[1]
    with pytest.raises(RepresentationError, match="time"):
        on.lookup(SMILES, DOSES)
    # the off entry's key is the key of (SMILES, dose) pairs, as before the option existed
    pairs = sorted(set(zip(SMILES, DOSES)))
    assert entry_key(RDKitFingerprint(), pairs) == stable_hash(
        {"format": FORMAT_VERSION, "representation": RDKitFingerprint().cache_key(), "parts": [],
         "pairs": pairs}, length=64)
    # reopening the on entry gives the (SMILES, dose, time) triples back
    again = embed_conditions(RDKitFingerprint(condition_on_time=True), SMILES, DOSES, tmp_path, times=TIMES)
    assert again.pairs == on.pairs


# -- the data module on SKBR3 (6 h and 24 h of the same compounds and doses) -----------------------------------
def _skbr3(tmp_path_factory, condition_on_time: bool):
    cache = tmp_path_factory.mktemp("cache")
    cfg = compose_train(["data=bundle", "data.sources=[LJP001-002_SKBR3]", "split=random_fold",
                         f"perturbation.condition_on_time={str(condition_on_time).lower()}"], cache, cache, cache)
    dm = instantiate(cfg.data, split=instantiate(cfg.split), representation=instantiate(cfg.perturbation),
                     _recursive_=False)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def skbr3(tmp_path_factory):
    return {on: _skbr3(tmp_path_factory, on) for on in (False, True)}


def _same_compound_and_dose_at_6_and_24h(dm) -> tuple[int, int]:
    obs = dm.adata.obs.reset_index(drop=True)
    treated = obs[~obs["is_control"].to_numpy(bool)]
    early = treated[treated["time"] == 6.0].iloc[0]
    late = treated[(treated["time"] == 24.0) & (treated["smiles"] == early["smiles"])
                   & (treated["dose"] == early["dose"])]
    return int(early.name), int(late.index[0])


def test_data_module_keys_conditions_by_time_only_when_on(skbr3):
    off, on = skbr3[False], skbr3[True]
    assert off.condition_columns() == ["smiles", "dose"] and on.condition_columns() == ["smiles", "dose", "time"]
    early, late = _same_compound_and_dose_at_6_and_24h(on)
    assert off.assembler.condition_index[early] == off.assembler.condition_index[late]
    assert on.assembler.condition_index[early] != on.assembler.condition_index[late]
    batch = on.batch_of_rows(np.array([early, late]))
    assert batch["c_pert"].shape == (2, 1, 1025) and on.dims["d_pert"] == 1025
    assert batch["time"].tolist() == [6.0, 24.0]
    assert not torch.equal(batch["c_pert"][0], batch["c_pert"][1])
    # models read the drug through their normal input: PRnet and ChemCPA the (masked) mean of c_pert
    vectors = drug_vector(batch)
    assert vectors[1, -1] / vectors[0, -1] == pytest.approx(np.log2(24) / np.log2(6), rel=2e-3)


def test_data_module_off_serves_exactly_the_paper_features(skbr3):
    dm = skbr3[False]
    rows = dm.rows["train"][:32]
    batch = dm.batch_of_rows(rows)
    obs = dm.adata.obs.iloc[rows]
    weight = np.log10(obs["dose"].to_numpy(np.float64) + 1.0).astype(np.float32)
    expected = (_bits(list(obs["smiles"])) * weight[:, None]).astype(np.float16).astype(np.float32)  # the cache
    assert batch["c_pert"][:, 0].numpy().tobytes() == expected.tobytes()


def test_chemcpa_sees_the_time_in_its_dose_free_drug_direction(skbr3):
    """ChemCPA normalises the drug vector (the dose enters through its dose response): with the time feature
    dose-weighted like the bits, the direction still does not depend on the dose, and does on the time."""
    dm = skbr3[True]
    obs = dm.adata.obs.reset_index(drop=True)
    treated = obs[~obs["is_control"].to_numpy(bool)]
    smiles = treated["smiles"].iloc[0]
    same = treated[(treated["smiles"] == smiles) & (treated["time"] == 24.0)]
    low, high = same.sort_values("dose").index[[0, -1]]
    early, late = _same_compound_and_dose_at_6_and_24h(dm)
    unit = torch.nn.functional.normalize(drug_vector(dm.batch_of_rows(np.array([low, high, early, late]))), dim=1)
    assert torch.allclose(unit[0], unit[1], atol=2e-3)  # float16 cache
    assert not torch.allclose(unit[2], unit[3], atol=1e-2)


def test_a_dataset_without_times_stops_with_the_sources_named(skbr3):
    dm = skbr3[True]
    adata = dm.adata.copy()
    adata.obs["time"] = np.nan
    dm._features = None
    with pytest.raises(DataError, match="LJP001-002_SKBR3"):
        dm._encode_conditions(adata)
