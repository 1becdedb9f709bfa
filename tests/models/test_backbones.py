"""Behaviour every gene-token backbone promises (tiny models: D=16, 1 layer, 2 heads, 12 genes, L=3)."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pertdit.config import CONFIG_DIR
from pertdit.models import AdaDiT, CatCrossDiT, CatonlyCrossDiT, CrossDiT
from pertdit.models.layers import Attention, CrossAttentionLayer

BACKBONES = [CrossDiT, CatCrossDiT, AdaDiT, CatonlyCrossDiT]
G, D_PERT, B, L = 12, 5, 4, 3
TINY = dict(d_model=16, n_layers=1, n_heads=2, mlp_hidden=16, time_embed_dim=32)
CONF = CONFIG_DIR / "model" / "backbone"

each_backbone = pytest.mark.parametrize("cls", BACKBONES, ids=lambda c: c.__name__)


def make(cls, seed=0, **kw):
    torch.manual_seed(seed)
    return cls(n_genes=G, d_pert=D_PERT, **{**TINY, **kw}).eval()


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, 2] = mask[1, 2] = mask[2, 1:] = False  # padded tokens, one sample with a single real token
    return dict(
        x_t=torch.randn(B, G, generator=g),
        t=torch.randint(0, 50, (B,), generator=g),
        c_pre=torch.randn(B, G, generator=g),
        c_pert=torch.randn(B, L, D_PERT, generator=g),
        c_pert_mask=mask,
    )


def randomize_adaln(model):
    """Lift adaLN-Zero (gates = 0 block every gradient into the modulated branches)."""
    for name, p in model.named_parameters():
        if "modulation" in name:
            torch.nn.init.normal_(p, std=0.1)


@each_backbone
def test_output_shape(cls):
    out = make(cls)(**batch())
    assert out.shape == (B, G) and out.dtype == torch.float32 and torch.isfinite(out).all()


@each_backbone
def test_gradient_reaches_every_parameter(cls):
    model = make(cls).train()
    randomize_adaln(model)
    drop = torch.tensor([False, True, False, False])  # the null token is used only by dropped samples
    model(**batch(), drop_cond=drop).square().sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert dead == []


@each_backbone
def test_permuting_genes_permutes_the_output(cls):
    model, b = make(cls), batch()
    perm = torch.randperm(G, generator=torch.Generator().manual_seed(3))
    out = model(**b)
    permuted = make(cls)
    permuted.load_state_dict(model.state_dict())
    with torch.no_grad():
        permuted.gene_embedding.weight.copy_(model.gene_embedding.weight[perm])
    out_perm = permuted(**{**b, "x_t": b["x_t"][:, perm], "c_pre": b["c_pre"][:, perm]})
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-4, atol=1e-5)


@each_backbone
def test_padded_perturbation_tokens_do_not_matter(cls):
    model, b = make(cls), batch()
    out = model(**b)
    noisy = b["c_pert"].clone()
    noisy[~b["c_pert_mask"]] = 1e3 * torch.randn(int((~b["c_pert_mask"]).sum()), D_PERT)
    torch.testing.assert_close(model(**{**b, "c_pert": noisy}), out)
    # same as sending only the real tokens
    one = {k: v[3:] for k, v in b.items()}
    one_real = {**one, "c_pert": one["c_pert"][:, :2], "c_pert_mask": one["c_pert_mask"][:, :2]}
    one["c_pert_mask"] = one["c_pert_mask"].clone()
    one["c_pert_mask"][:, 2] = False
    torch.testing.assert_close(model(**one), model(**one_real), rtol=1e-5, atol=1e-6)


@each_backbone
def test_drop_cond_uses_the_learned_null_token(cls):
    model, b = make(cls), batch()
    drop = torch.tensor([True, False, True, False])
    out = model(**b, drop_cond=drop)
    torch.testing.assert_close(model(**b, drop_cond=torch.zeros(B, dtype=torch.bool)), model(**b))
    # dropped samples ignore their perturbation (tokens and mask); kept samples are unaffected by the drop
    other = {**b, "c_pert": torch.randn(B, L, D_PERT), "c_pert_mask": torch.ones(B, L, dtype=torch.bool)}
    out_other = model(**other, drop_cond=drop)
    torch.testing.assert_close(out_other[drop], out[drop])
    torch.testing.assert_close(out[~drop], model(**b)[~drop])
    # ... and depend on the null token
    with torch.no_grad():
        model.null_pert.add_(torch.randn_like(model.null_pert))  # not a constant: LayerNorm removes it
    moved = model(**b, drop_cond=drop)
    assert not torch.allclose(moved[drop], out[drop])
    torch.testing.assert_close(moved[~drop], out[~drop])


@each_backbone
def test_sdpa_and_naive_attention_agree(cls):
    sdpa, naive = make(cls, attn_impl="sdpa"), make(cls, seed=5, attn_impl="naive")
    randomize_adaln(sdpa)
    naive.load_state_dict(sdpa.state_dict())
    assert {m.attn_impl for m in naive.modules() if isinstance(m, Attention)} == {"naive"}
    b = batch()
    torch.testing.assert_close(naive(**b), sdpa(**b), rtol=1e-4, atol=1e-5)


@each_backbone
def test_eval_mode_is_deterministic(cls):
    model, b = make(cls, dropout=0.5), batch()
    randomize_adaln(model)
    torch.testing.assert_close(model(**b), model(**b), rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(**b), model(**b))  # dropout is wired in


@each_backbone
def test_wrong_gene_count_is_named(cls):
    b = batch()
    with pytest.raises(ValueError, match="12 genes"):
        make(cls)(**{**b, "x_t": b["x_t"][:, :5], "c_pre": b["c_pre"][:, :5]})


@each_backbone
def test_hydra_config_builds_the_backbone(cls):
    name = {"CatonlyCrossDiT": "catonlycrossdit"}.get(cls.__name__, cls.__name__.lower())
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg._target_ == f"pertdit.models.{cls.__name__}"
    assert "n_genes" not in cfg and "d_pert" not in cfg
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.mlp_hidden) == (256, 2, 4, 256)
    cfg.merge_with(TINY)
    model = instantiate(cfg, n_genes=G, d_pert=D_PERT)
    assert type(model) is cls and model(**batch()).shape == (B, G)


def test_adadit_with_adaln_zero_blocks_start_as_identity():
    """adaLN-Zero (an option): gates start at 0, so self-attention and MLP weights do not matter at init."""
    model, b = make(AdaDiT, adaln_zero=True), batch()
    out = model(**b)
    with torch.no_grad():
        for block in model.blocks:
            for p in [*block.self_attn.parameters(), *block.mlp.parameters()]:
                p.add_(torch.randn_like(p))
    torch.testing.assert_close(model(**b), out)


def test_adadit_blocks_have_no_cross_attention():
    """AdaDiT replaces the cross-attention to c_pert by AdaLN: one self-attention per block, nothing else."""
    model = make(AdaDiT)
    assert not any(isinstance(m, CrossAttentionLayer) for m in model.modules())
    for block in model.blocks:
        attentions = [m for m in block.modules() if isinstance(m, Attention)]
        assert attentions == [block.self_attn]


def test_adadit_by_default_starts_with_active_blocks_as_the_authors_initialise():
    """The authors' AdaDiT: Xavier-initialised modulation and affine LayerNorms (not adaLN-Zero)."""
    model = make(AdaDiT)
    for block in model.blocks:
        assert block.modulation.proj.weight.abs().sum() > 0
        assert block.norm_attn.weight is not None and block.norm_mlp.weight is not None


def _mean_token_copies(c_pert, mask, n_copies):
    """Every sample's perturbation tokens replaced by `n_copies` copies of their masked mean (all real)."""
    weights = mask.float()[..., None]
    mean = (c_pert * weights).sum(1) / weights.sum(1)
    return mean[:, None].expand(-1, n_copies, -1).contiguous(), torch.ones(c_pert.shape[0], n_copies, dtype=torch.bool)


def test_adadit_sees_the_perturbation_tokens_only_through_their_pooled_vector():
    model, b = make(AdaDiT), batch()
    out = model(**b)
    # reversing the token order (mask with it) changes nothing
    reversed_tokens = {**b, "c_pert": b["c_pert"].flip(1), "c_pert_mask": b["c_pert_mask"].flip(1)}
    torch.testing.assert_close(model(**reversed_tokens), out, rtol=1e-5, atol=1e-6)
    # nor does replacing the tokens by copies of their mean, in any number
    for n_copies in (1, L, 5):
        tokens, mask = _mean_token_copies(b["c_pert"], b["c_pert_mask"], n_copies)
        torch.testing.assert_close(model(**{**b, "c_pert": tokens, "c_pert_mask": mask}), out, rtol=1e-5, atol=1e-5)
    # ... while a different pooled vector does change the output
    other = {**b, "c_pert": b["c_pert"] + torch.randn(D_PERT)}
    assert not torch.allclose(model(**other), out, atol=1e-4)


def test_catcrossdit_in_contrast_attends_to_the_individual_tokens():
    """The control of the test above: cross-attention sees more than the mean of the tokens."""
    model, b = make(CatCrossDiT), batch()
    tokens, mask = _mean_token_copies(b["c_pert"], b["c_pert_mask"], L)
    assert not torch.allclose(model(**{**b, "c_pert": tokens, "c_pert_mask": mask}), model(**b), atol=1e-4)
