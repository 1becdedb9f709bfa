"""SMILES -> English description: a deterministic RDKit-derived sentence, or a seq2seq captioner (MolT5)."""
from __future__ import annotations

import logging
from collections import Counter

import rdkit
from rdkit import Chem
from rdkit.Chem import Crippen, Descriptors, Lipinski, rdMolDescriptors
from rdkit.Chem.Scaffolds import MurckoScaffold
from tqdm.auto import tqdm

from pertdit.perturbation.base import parse_smiles, resolve_pretrained, stable_hash, weights_fingerprint

log = logging.getLogger(__name__)

#: the captioner the PertDiT authors used
DEFAULT_CAPTIONER_ID = "laituan245/molt5-large-smiles2caption"

#: bump when the wording of RDKitDescription changes (it is part of every text cache key)
DESCRIPTION_VERSION = 1

#: (name, SMARTS), reported in this order with their counts
FUNCTIONAL_GROUPS: tuple[tuple[str, str], ...] = (
    ("carboxylic acid", "[CX3](=O)[OX2H1]"),
    ("carboxylate", "[CX3](=O)[OX1-]"),
    ("ester", "[#6][CX3;!R](=O)[OX2H0][#6]"),
    ("lactone", "[#6][CX3;R](=O)[OX2H0;R][#6]"),
    ("amide", "[NX3;!R][CX3](=[OX1])[#6]"),
    ("lactam", "[NX3;R][CX3;R](=[OX1])[#6]"),
    ("urea", "[NX3][CX3](=[OX1])[NX3]"),
    ("carbamate", "[NX3][CX3](=[OX1])[OX2][#6]"),
    ("sulfonamide", "[SX4](=[OX1])(=[OX1])[NX3]"),
    ("sulfone", "[#6][SX4](=[OX1])(=[OX1])[#6]"),
    ("sulfoxide", "[#6][SX3](=[OX1])[#6]"),
    ("ketone", "[#6][CX3](=O)[#6]"),
    ("aldehyde", "[CX3H1](=O)[#6]"),
    ("alpha,beta-unsaturated carbonyl", "[CX3]=[CX3][CX3]=[OX1]"),
    ("nitrile", "[CX2]#[NX1]"),
    ("nitro group", "[$([NX3](=O)=O),$([NX3+](=O)[O-])]"),
    ("guanidine", "[NX3][CX3](=[NX2])[NX3]"),
    ("amidine", "[NX3][CX3;!$(C(N)(N)=N)]=[NX2;!$(N[#8])]"),
    ("hydrazine or hydrazide", "[NX3][NX3]"),
    ("azo group", "[#6][NX2]=[NX2][#6]"),
    ("oxime", "[CX3]=[NX2][OX2]"),
    ("primary aromatic amine", "[NX3;H2]a"),
    ("secondary aromatic amine", "[NX3;H1;!$(N[#6]=[#7,#8,#16]);!$(N[#16]=O)](a)[#6]"),
    ("primary aliphatic amine", "[NX3;H2;!$(N[#6]=[#7,#8,#16]);!$(Na)][CX4]"),
    ("secondary aliphatic amine", "[NX3;H1;!$(N[#6]=[#7,#8,#16]);!$(Na);!$(N[#16]=O)]([CX4])[CX4]"),
    ("tertiary aliphatic amine", "[NX3;H0;!$(N[#6]=[#7,#8,#16]);!$(Na);!$(N[#16,#15]=O)]([CX4])([CX4])[CX4]"),
    ("quaternary ammonium", "[NX4+]"),
    ("alcohol", "[CX4][OX2H]"),
    ("phenol", "c[OX2H]"),
    ("ether", "[OX2;!R;!$(O[#6]=[#7,#8,#16]);!$(O[#15,#16])]([#6])[#6]"),
    ("epoxide", "C1OC1"),
    ("thiol", "[SX2H]"),
    ("thioether", "[#6][SX2;!R][#6]"),
    ("phosphate or phosphonate", "[PX4](=O)([OX2,OX1-])"),
    ("trifluoromethyl group", "C(F)(F)F"),
    ("fluorine atom", "[F]"),
    ("chlorine atom", "[Cl]"),
    ("bromine atom", "[Br]"),
    ("iodine atom", "[I]"),
    ("carbon-carbon double bond", "[CX3;!R]=[CX3]"),
    ("carbon-carbon triple bond", "[CX2]#[CX2]"),
)
_GROUP_PATTERNS = tuple((name, Chem.MolFromSmarts(smarts)) for name, smarts in FUNCTIONAL_GROUPS)

#: (ring size, aromatic, heteroatoms sorted, positions of the heteroatoms) -> common name
_AROMATIC_RINGS = {
    (6, ()): "benzene", (6, ("N",)): "pyridine", (6, ("N", "N"), 1): "pyridazine",
    (6, ("N", "N"), 2): "pyrimidine", (6, ("N", "N"), 3): "pyrazine", (6, ("N", "N", "N")): "triazine",
    (5, ("N",)): "pyrrole", (5, ("O",)): "furan", (5, ("S",)): "thiophene",
    (5, ("N", "N"), 1): "pyrazole", (5, ("N", "N"), 2): "imidazole",
    (5, ("N", "O"), 1): "isoxazole", (5, ("N", "O"), 2): "oxazole",
    (5, ("N", "S"), 1): "isothiazole", (5, ("N", "S"), 2): "thiazole",
    (5, ("N", "N", "N")): "triazole", (5, ("N", "N", "N", "N")): "tetrazole",
    (5, ("N", "N", "O")): "oxadiazole", (5, ("N", "N", "S")): "thiadiazole",
}
_SATURATED_RINGS = {
    (3, ()): "cyclopropane", (4, ()): "cyclobutane", (5, ()): "cyclopentane", (6, ()): "cyclohexane",
    (7, ()): "cycloheptane", (3, ("O",)): "oxirane", (4, ("N",)): "azetidine", (4, ("O",)): "oxetane",
    (5, ("N",)): "pyrrolidine", (5, ("O",)): "tetrahydrofuran", (5, ("S",)): "tetrahydrothiophene",
    (6, ("N",)): "piperidine", (6, ("O",)): "tetrahydropyran", (6, ("N", "N"), 3): "piperazine",
    (6, ("N", "O"), 3): "morpholine", (6, ("N", "S"), 3): "thiomorpholine", (7, ("N",)): "azepane",
    (5, ("O", "O"), 2): "1,3-dioxolane",
}
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _count(n: int, noun: str, suffix: str = "") -> str:
    """'one ring', 'two rings', 'an ester', 'three ethers' (`suffix` follows the noun unchanged)."""
    word = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    plural = noun if n == 1 else (noun[:-1] + "es" if noun.endswith("x") else noun + "s")
    return f"{word} {plural}{suffix}"


def _a(noun: str, suffix: str = "") -> str:
    """'a ring' / 'an ester' (suffix follows)."""
    return f"{'an' if noun[0] in 'aeio' else 'a'} {noun}{suffix}"


def _some(n: int, noun: str, suffix: str = "") -> str:
    return _a(noun, suffix) if n == 1 else _count(n, noun, suffix)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_ELEMENT_NAMES = {
    "N": "nitrogen", "O": "oxygen", "S": "sulfur", "P": "phosphorus", "B": "boron", "Se": "selenium",
}


def _ring_name(mol: Chem.Mol, ring: tuple[int, ...]) -> tuple[str, str]:
    """(noun, suffix) naming one ring (`ring` lists its atoms in cyclic order): ('pyridine ring', '') or
    ('partially unsaturated 7-membered ring', ' containing nitrogen')."""
    atoms = [mol.GetAtomWithIdx(i) for i in ring]
    size = len(ring)
    hetero = [(pos, a.GetSymbol()) for pos, a in enumerate(atoms) if a.GetSymbol() != "C"]
    elements = tuple(sorted(sym for _, sym in hetero))
    bonds = [mol.GetBondBetweenAtoms(ring[k], ring[(k + 1) % size]) for k in range(size)]
    aromatic = all(a.GetIsAromatic() for a in atoms)
    saturated = all(b.GetBondType() == Chem.BondType.SINGLE for b in bonds)
    key: tuple = (size, elements)
    if len(hetero) == 2:
        gap = abs(hetero[0][0] - hetero[1][0])
        key = (size, elements, min(gap, size - gap))
    table = _AROMATIC_RINGS if aromatic else _SATURATED_RINGS if saturated else {}
    name = table.get(key, table.get((size, elements)))
    if name is not None:
        return f"{name} ring", ""
    kind = "aromatic" if aromatic else "saturated" if saturated else "partially unsaturated"
    if not elements:
        return f"{kind} {size}-membered carbocyclic ring", ""
    content = _join([_ELEMENT_NAMES.get(e, e) for e in sorted(set(elements))])
    return f"{kind} {size}-membered ring", f" containing {content}"


def _ring_systems(rings: list[tuple[int, ...]]) -> list[int]:
    """Number of rings in each ring system (rings sharing an atom belong to one system), largest first."""
    systems: list[tuple[set[int], int]] = []
    for ring in rings:
        atoms, count = set(ring), 1
        for other in [s for s in systems if s[0] & atoms]:
            systems.remove(other)
            atoms |= other[0]
            count += other[1]
        systems.append((atoms, count))
    return sorted((count for _, count in systems), reverse=True)


class RDKitDescription:
    """Deterministic English description of a molecule from RDKit: formula and size, rings and ring systems,
    the Bemis-Murcko scaffold, functional groups, logP, H-bond donors/acceptors, TPSA, charge."""

    def __init__(self, include_scaffold_smiles: bool = True) -> None:
        self.include_scaffold_smiles = include_scaffold_smiles

    def cache_key(self) -> str:
        options = {"version": DESCRIPTION_VERSION, "rdkit": rdkit.__version__}
        return "rdkit_description-" + stable_hash({**options, "scaffold": self.include_scaffold_smiles})

    def caption(self, smiles: list[str]) -> list[str]:
        return [self.describe(s) for s in smiles]

    def describe(self, smiles: str) -> str:
        """One paragraph about the molecule of `smiles` (RepresentationError when RDKit cannot parse it)."""
        mol = parse_smiles(smiles)
        parts = [self._size(mol), self._rings(mol), self._groups(mol), self._properties(mol)]
        return " ".join(p for p in parts if p)

    def _size(self, mol: Chem.Mol) -> str:
        text = (
            f"The molecule has the formula {rdMolDescriptors.CalcMolFormula(mol)}, a molecular weight of "
            f"{Descriptors.MolWt(mol):.1f} g/mol and {_count(mol.GetNumHeavyAtoms(), 'heavy atom')}."
        )
        fragments = len(Chem.GetMolFrags(mol))
        if fragments > 1:
            text += f" It consists of {_count(fragments, 'separate component')}, as a salt or mixture does."
        return text

    def _rings(self, mol: Chem.Mol) -> str:
        rings = list(mol.GetRingInfo().AtomRings())
        if not rings:
            return "It is acyclic."
        names = Counter(_ring_name(mol, ring) for ring in rings)
        listed = [_some(n, noun, suffix) for (noun, suffix), n in sorted(names.items())]
        aromatic = sum(all(mol.GetAtomWithIdx(i).GetIsAromatic() for i in r) for r in rings)
        hetero = sum(any(mol.GetAtomWithIdx(i).GetSymbol() != "C" for i in r) for r in rings)
        systems = _ring_systems(rings)
        fused = [n for n in systems if n > 1]
        text = (
            f"It contains {_count(len(rings), 'ring')} ({aromatic} aromatic, {hetero} heterocyclic) in "
            f"{_count(len(systems), 'ring system')}: {_join(listed)}."
        )
        if fused:
            text += f" The largest ring system is a fused system of {_count(fused[0], 'ring')}."
        largest = max(len(r) for r in rings)
        if largest >= 12:
            text += f" It is a macrocycle with a {largest}-membered ring."
        if self.include_scaffold_smiles:
            scaffold = Chem.MolToSmiles(MurckoScaffold.GetScaffoldForMol(mol))
            text += f" Its Bemis-Murcko scaffold is {scaffold}."
        return text

    def _groups(self, mol: Chem.Mol) -> str:
        found = []
        for name, pattern in _GROUP_PATTERNS:
            n = len(mol.GetSubstructMatches(pattern))
            if n:
                found.append(_some(n, name))
        if not found:
            return "It has no common functional groups."
        return f"Its functional groups include {_join(found)}."

    def _properties(self, mol: Chem.Mol) -> str:
        logp = round(Crippen.MolLogP(mol), 2) + 0.0  # + 0.0: never "-0.00"
        donors, acceptors = rdMolDescriptors.CalcNumHBD(mol), rdMolDescriptors.CalcNumHBA(mol)
        stereo = len(Chem.FindMolChiralCenters(mol, includeUnassigned=True, useLegacyImplementation=False))
        text = (
            f"It has a calculated logP of {logp:.2f}, {_count(donors, 'hydrogen-bond donor')}, "
            f"{_count(acceptors, 'hydrogen-bond acceptor')}, a topological polar surface area of "
            f"{rdMolDescriptors.CalcTPSA(mol):.1f} square angstroms, "
            f"{_count(rdMolDescriptors.CalcNumRotatableBonds(mol), 'rotatable bond')} and "
            f"{_count(stereo, 'stereocenter')}."
        )
        charge = Chem.GetFormalCharge(mol)
        text += " It is neutral." if charge == 0 else f" It carries a net charge of {charge:+d}."
        violations = sum(
            (
                Descriptors.MolWt(mol) > 500,
                logp > 5,
                Lipinski.NumHDonors(mol) > 5,
                Lipinski.NumHAcceptors(mol) > 10,
            )
        )
        text += (
            " It satisfies Lipinski's rule of five."
            if violations == 0
            else f" It breaks Lipinski's rule of five {'once' if violations == 1 else f'{violations} times'}."
        )
        return text


class Seq2SeqCaptioner:
    """SMILES -> caption with a transformers seq2seq model (MolT5 by default), beam search, no sampling.

    Weights resolve from `local_dir`, a path as `model_id`, or the Hugging Face cache, downloaded on first
    use unless offline (`local_files_only`, HF_HUB_OFFLINE); the model loads on the first `caption` call.
    """

    def __init__(
        self,
        model_id: str = DEFAULT_CAPTIONER_ID,
        local_dir: str | None = None,
        num_beams: int = 5,
        max_length: int = 512,
        batch_size: int = 8,
        device: str = "cpu",
        local_files_only: bool | None = None,
    ) -> None:
        self.model_id = model_id
        self.path = resolve_pretrained(model_id, local_dir, "captioner", "captioner.local_dir", local_files_only)
        self.num_beams = num_beams
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._tokenizer = None

    def cache_key(self) -> str:
        return "seq2seq-" + stable_hash(
            {
                "model_id": self.model_id,
                "weights": weights_fingerprint(self.path),
                "num_beams": self.num_beams,
                "max_length": self.max_length,
            }
        )

    def _load(self) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self._model = AutoModelForSeq2SeqLM.from_pretrained(self.path, local_files_only=True)
        self._model.eval().to(self.device)

    def caption(self, smiles: list[str]) -> list[str]:
        """One caption per SMILES (each distinct SMILES generated once), in input order."""
        import torch

        if self._model is None:
            self._load()
        unique = sorted(set(smiles), key=lambda s: (len(s), s))
        captions: dict[str, str] = {}
        batches = range(0, len(unique), self.batch_size)
        for start in tqdm(batches, desc=f"captioning with {self.model_id}", disable=len(batches) < 2):
            chunk = unique[start : start + self.batch_size]
            inputs = self._tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            with torch.inference_mode():
                output = self._model.generate(
                    **inputs, num_beams=self.num_beams, max_length=self.max_length, do_sample=False
                )
            texts = self._tokenizer.batch_decode(output, skip_special_tokens=True)
            captions.update({s: t.strip() for s, t in zip(chunk, texts)})
        return [captions[s] for s in smiles]
