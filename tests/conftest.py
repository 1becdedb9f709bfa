"""Shared fixtures: the real L1000 plate from ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]
LEVEL3 = "l1000_LJP005_A375_24H_level3_n377x978.gct"
LEVEL4 = "l1000_LJP005_A375_24H_level4_zscore_n377x978.gctx"
COMPOUNDS = "l1000_LJP005_compounds.tsv"


def shared_data_dir() -> Path | None:
    """`$PERTDIT_DATA` or `<repo>/../shared/data`, when it holds the plate."""
    candidate = Path(os.environ.get("PERTDIT_DATA", REPO.parent / "shared" / "data"))
    return candidate if (candidate / LEVEL3).is_file() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = shared_data_dir()
    if found is None:
        pytest.skip("real L1000 plate not found: set PERTDIT_DATA or provide ../shared/data")
    return found


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A preprocessing/embedding cache folder shared by the tests of one module."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def level3_path(data_dir: Path) -> Path:
    return data_dir / LEVEL3


@pytest.fixture(scope="session")
def level4_path(data_dir: Path) -> Path:
    return data_dir / LEVEL4


@pytest.fixture(scope="session")
def compounds_path(data_dir: Path) -> Path:
    return data_dir / COMPOUNDS


# Tiny Hugging Face models built from configs and saved to temporary folders (never the network).
WORDS = (
    "the molecule has formula a an molecular weight of g mol and heavy atoms atom it contains ring rings "
    "aromatic heterocyclic in system systems benzene pyridine pyrimidine piperazine morpholine thiophene "
    "its bemis murcko scaffold is functional groups group include amide amine alcohol ether primary "
    "secondary tertiary calculated logp hydrogen bond donor donors acceptor acceptors topological polar "
    "surface area square angstroms rotatable bonds stereocenter stereocenters neutral satisfies lipinski "
    "rule five dosage micromoles one two three four no"
).split()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT (hidden 32) with its WordPiece tokenizer, written by save_pretrained."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path = tmp_path_factory.mktemp("tiny_bert")
    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *chars, *("##" + c for c in chars)]
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizer.from_pretrained(path).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
    )
    BertModel(config).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    """A 2-layer T5ForConditionalGeneration (d_model 32) with a character-level tokenizer."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    path = tmp_path_factory.mktemp("tiny_t5")
    characters = string.ascii_letters + string.digits + "()[]=#@+-/\\%."
    symbols = ["<pad>", "</s>", "<unk>", *dict.fromkeys(characters)]
    backend = Tokenizer(models.WordLevel({s: i for i, s in enumerate(symbols)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(symbols), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).eval().save_pretrained(path)
    return path


