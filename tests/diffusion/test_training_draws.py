"""A training step's random draws are a function of (seed, optimiser step, DDP rank) only."""

import itertools

from pertdit.lit.diffusion import training_seed


def test_training_seed_is_reproducible():
    assert training_seed(0, 17, 1) == training_seed(0, 17, 1)


def test_every_seed_step_and_rank_gets_its_own_training_seed():
    triples = list(itertools.product(range(3), range(50), range(4)))
    seeds = {training_seed(*triple) for triple in triples}
    assert len(seeds) == len(triples)
    assert all(0 <= s < 2**63 for s in seeds)  # a valid torch.Generator seed
