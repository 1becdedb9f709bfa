"""RDKitDescription: a deterministic, informative sentence from the structure alone."""
import subprocess
import sys

import pytest

from pertdit.errors import RepresentationError
from pertdit.perturbation import RDKitDescription

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def test_aspirin_reads_as_expected():
    assert RDKitDescription().describe(ASPIRIN) == (
        "The molecule has the formula C9H8O4, a molecular weight of 180.2 g/mol and 13 heavy atoms. "
        "It contains one ring (1 aromatic, 0 heterocyclic) in one ring system: a benzene ring. "
        "Its Bemis-Murcko scaffold is c1ccccc1. "
        "Its functional groups include a carboxylic acid and an ester. "
        "It has a calculated logP of 1.31, one hydrogen-bond donor, three hydrogen-bond acceptors, "
        "a topological polar surface area of 63.6 square angstroms, two rotatable bonds and no "
        "stereocenters. "
        "It is neutral. It satisfies Lipinski's rule of five."
    )


def test_descriptions_name_rings_groups_and_charge():
    describe = RDKitDescription().describe
    # the plate's first compound: thienopyrimidine with morpholine and piperazine (a PI3K inhibitor)
    text = describe("Cc1c(CN2CCN(C(=O)C(C)O)CC2)sc2c(N3CCOCC3)nc(-c3cnc(N)nc3)nc12")
    for phrase in ("a morpholine ring", "a piperazine ring", "two pyrimidine rings", "a thiophene ring",
                   "fused system of two rings", "primary aromatic amine", "one stereocenter"):
        assert phrase in text
    assert "net charge of +1" in describe("C[N+](C)(C)CCO")
    assert "macrocycle with a 14-membered ring" in describe("C1CCCCCCCCCCCCC1")
    assert "two separate components" in describe("CCN.Cl")
    assert "It is acyclic." in describe("CCO")


def test_every_plate_compound_gets_its_own_description(compounds):
    texts = RDKitDescription().caption(list(compounds["canonical_smiles"]))
    assert len(set(texts)) == len(texts)
    assert all(t.startswith("The molecule has the formula") and t.endswith(".") for t in texts)


def test_description_is_the_same_in_a_fresh_process(compounds):
    smiles = compounds["canonical_smiles"].iloc[1]
    code = f"import pertdit.perturbation as p; print(p.RDKitDescription().describe({smiles!r}))"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert fresh.strip() == RDKitDescription().describe(smiles)


def test_scaffold_smiles_is_optional_and_changes_the_key():
    short = RDKitDescription(include_scaffold_smiles=False)
    assert "Bemis-Murcko" not in short.describe(ASPIRIN)
    assert short.cache_key() != RDKitDescription().cache_key()


def test_invalid_smiles_is_named():
    with pytest.raises(RepresentationError, match="C1CC"):
        RDKitDescription().describe("C1CC")
