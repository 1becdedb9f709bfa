"""PertDiT: diffusion transformers for drug-induced transcriptome prediction."""
__version__ = "0.1.0"
