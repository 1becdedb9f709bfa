"""The text encoder of small-scale runs: the configured one when its weights are on this machine, else a tiny
randomly initialised BERT written to disk, so the text pipeline (descriptions, tokens, cache, cross-attention)
runs end to end offline. Its embeddings carry the tokens' identity, not language: results of text-based
methods made with it are a pipeline check, not the paper's."""

from __future__ import annotations

import logging
import string
from pathlib import Path

from pertdit.errors import RepresentationError
from pertdit.perturbation.base import resolve_pretrained

log = logging.getLogger(__name__)

#: the encoder of pertdit/conf/perturbation/text*.yaml (the authors')
DEFAULT_ENCODER_ID = "michiyasunaga/BioLinkBERT-large"

#: the folder name of the tiny random BERT under `$PERTDIT_CACHE/models/`
TINY_ENCODER_NAME = "tiny-random-bert"

#: words of the RDKit-derived descriptions and of the dose prompt (the rest falls back to characters)
_WORDS = (
    "the molecule has formula a an molecular weight of g mol and heavy atoms atom it contains ring rings "
    "aromatic heterocyclic in system systems benzene pyridine pyrimidine pyrazine pyrrole furan thiophene "
    "imidazole pyrazole oxazole thiazole triazole piperidine piperazine morpholine pyrrolidine its bemis "
    "murcko scaffold is functional groups group include amide amine alcohol ether ester ketone phenol "
    "sulfonamide nitrile urea carbamate primary secondary tertiary aliphatic fluorine chlorine bromine "
    "calculated logp hydrogen bond donor donors acceptor acceptors topological polar surface area square "
    "angstroms rotatable bonds stereocenter stereocenters neutral satisfies lipinski rule five dosage "
    "micromoles one two three four five six seven eight nine ten no membered carbocyclic containing largest "
    "fused unsaturated saturated partially breaks once times carbon nitrogen oxygen sulfur iodine amines "
    "alcohols ethers ketones phenols carbonyl carbonyls double triple alpha beta lactam lactone sulfone "
    "trifluoromethyl epoxide oxirane triazine oxadiazole cyclopropane cyclobutane cyclopentane cyclohexane "
    "macrocycle with common"
).split()


def find_encoder(encoder_id: str = DEFAULT_ENCODER_ID) -> Path | None:
    """The local folder of `encoder_id` (Hugging Face cache or a path); None when not on this machine."""
    try:
        return resolve_pretrained(encoder_id, None, "text encoder", "encoder_local_dir")
    except RepresentationError:
        return None


def small_scale_encoder(encoder_id: str = DEFAULT_ENCODER_ID) -> str | None:
    """`scale.text_encoder_dir=...` naming the tiny random BERT when `encoder_id` is not on this machine (built
    once under `$PERTDIT_CACHE/models/tiny-random-bert`), else None (the configured encoder is used)."""
    from pertdit.config import default_cache_dir

    if find_encoder(encoder_id) is not None:
        return None
    path = build_tiny_encoder(Path(default_cache_dir()) / "models" / TINY_ENCODER_NAME)
    log.warning("text encoder %r is not on this machine: the text-based methods use a tiny random BERT (%s)",
                encoder_id, path)
    return f"scale.text_encoder_dir={path}"


def build_tiny_encoder(path: Path, hidden_size: int = 32, seed: int = 0) -> Path:
    """Write a 2-layer BERT (hidden `hidden_size`, random weights from `seed`) and its WordPiece vocabulary to
    `path` with `save_pretrained`; reuse it when already there. Returns `path`."""
    path = Path(path)
    if (path / "config.json").is_file() and (path / "vocab.txt").is_file():
        return path
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS, *chars,
                                *("##" + c for c in chars)]))
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer.from_pretrained(path).save_pretrained(path)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=512)
    BertModel(config).eval().save_pretrained(path)
    torch.random.set_rng_state(generator_state)
    log.info("wrote a tiny random text encoder to %s", path)
    return path
