"""RDKitFingerprint: FCFP4 bits against a direct RDKit call, PRnet's log10(dose + 1) weighting."""
import numpy as np
import pytest
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import AllChem, rdFingerprintGenerator

from pertdit.errors import RepresentationError
from pertdit.perturbation import RDKitFingerprint


def _reference_bits(smiles: str, n_bits: int = 1024) -> np.ndarray:
    """FCFP4 bits straight from RDKit: the older Morgan API where this RDKit still has it."""
    mol = Chem.MolFromSmiles(smiles)
    if hasattr(AllChem, "GetMorganFingerprintAsBitVect"):
        with rdBase.BlockLogs():  # its deprecation warning
            fp = AllChem.GetMorganFingerprintAsBitVect(mol, 2, nBits=n_bits, useFeatures=True)
    else:
        invariants = rdFingerprintGenerator.GetMorganFeatureAtomInvGen()
        generator = rdFingerprintGenerator.GetMorganGenerator(
            radius=2, fpSize=n_bits, atomInvariantsGenerator=invariants
        )
        fp = generator.GetFingerprint(mol)
    out = np.zeros(n_bits)
    DataStructs.ConvertToNumpyArray(fp, out)
    return out


def test_bits_equal_rdkit_fcfp4_for_every_plate_compound(compounds):
    smiles = list(compounds["canonical_smiles"])
    bits = RDKitFingerprint().bits(smiles)
    reference = np.stack([_reference_bits(s) for s in smiles])
    np.testing.assert_array_equal(bits, reference)
    assert set(np.unique(bits)) == {0.0, 1.0}


def test_bits_follow_n_bits():
    smiles = "Cc1c(CN2CCN(C(=O)C(C)O)CC2)sc2c(N3CCOCC3)nc(-c3cnc(N)nc3)nc12"
    bits = RDKitFingerprint(n_bits=2048).bits([smiles])[0]
    np.testing.assert_array_equal(bits, _reference_bits(smiles, 2048))


def test_tokens_are_bits_times_log10_of_dose_plus_one():
    rep = RDKitFingerprint()
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O"]
    doses = [0.37, 10.0, 3.33]
    features = rep.encode(smiles, doses)
    assert features.tokens.shape == (3, 1, 1024) and features.tokens.dtype == np.float32
    assert features.mask.shape == (3, 1) and features.mask.all()
    for i, (s, d) in enumerate(zip(smiles, doses)):
        np.testing.assert_allclose(features.tokens[i, 0], _reference_bits(s) * np.log10(d + 1), rtol=1e-6)
    assert rep.dim == 1024


def test_control_dose_gives_zeros_and_negative_dose_is_an_error():
    rep = RDKitFingerprint()
    np.testing.assert_array_equal(rep.encode(["CCO"], [0.0]).tokens, 0.0)
    with pytest.raises(RepresentationError, match="-1.0 µM"):
        rep.encode(["CCO"], [-1.0])
    with pytest.raises(RepresentationError, match="negative or not a number"):
        rep.encode(["CCO"], [float("nan")])


def test_weighting_none_keeps_the_bits():
    features = RDKitFingerprint(dose_weighting="none").encode(["c1ccccc1O"], [0.0])
    np.testing.assert_array_equal(features.tokens[0, 0], _reference_bits("c1ccccc1O"))


def test_unknown_weighting_and_bad_smiles_are_named():
    with pytest.raises(RepresentationError, match="'sqrt'"):
        RDKitFingerprint(dose_weighting="sqrt")
    with pytest.raises(RepresentationError, match="C1CC"):
        RDKitFingerprint().encode(["C1CC"], [1.0])


def test_cache_key_follows_every_option():
    keys = {
        RDKitFingerprint().cache_key(),
        RDKitFingerprint(n_bits=2048).cache_key(),
        RDKitFingerprint(radius=3).cache_key(),
        RDKitFingerprint(use_features=False).cache_key(),
        RDKitFingerprint(dose_weighting="none").cache_key(),
    }
    assert len(keys) == 5
    assert RDKitFingerprint().cache_key() == RDKitFingerprint(cache_dir="/elsewhere").cache_key()
