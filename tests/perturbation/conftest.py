"""Fixtures of the representation tests; the tiny BERT/T5 models (`tiny_bert_dir`, `tiny_t5_dir`) live in
tests/conftest.py. Nothing here touches the network."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def compounds(compounds_path) -> pd.DataFrame:
    """The plate's compound table (58 real SMILES)."""
    return pd.read_csv(compounds_path, sep="\t")


@pytest.fixture
def no_captioner() -> dict:
    """A captioner config whose weights are on no machine (so describer=auto falls back to RDKit)."""
    return {"model_id": "pertdit-tests/no-such-captioner"}


@pytest.fixture
def text_rep(tiny_bert_dir, no_captioner):
    """Factory of TextRepresentation on the tiny BERT (RDKit descriptions unless told otherwise)."""
    from pertdit.perturbation import TextRepresentation

    def make(**options):
        options = {"describer": "rdkit", "captioner": no_captioner, "encoder_id": "tiny-bert",
                   "encoder_local_dir": str(tiny_bert_dir), "batch_size": 4, **options}
        return TextRepresentation(**options)

    return make
