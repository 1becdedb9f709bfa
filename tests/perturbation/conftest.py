"""Tiny models built from configs and saved to temporary folders, so the real loading, tokenising, batching
and caching code runs offline: a BERT encoder with a WordPiece vocabulary, a T5 captioner with a
character-level tokenizer. Nothing here touches the network."""
from __future__ import annotations

import os
import string
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

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
