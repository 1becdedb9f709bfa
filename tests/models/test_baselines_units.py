"""Unit tests of the PRnet and ChemCPA baselines on random and synthetic batches (no data module).

The synthetic task: perturbed profile = control + a shift that is a fixed linear function of the drug's
fingerprint, scaled by log10(dose + 1). Drugs 6 and 7 never appear in training ("unseen drugs").
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from pertdit.config import CONFIG_DIR
from pertdit.lit.baselines import ChemCPAModule, PRnetModule, drug_vector, gaussian_nll
from pertdit.models.chemcpa import ChemCPA
from pertdit.models.prnet import PRnet

torch.set_num_threads(1)

G, D, N_DRUGS, N_CELLS = 16, 12, 8, 3
TRAIN_DRUGS = (0, 1, 2, 3, 4, 5)
UNSEEN_DRUGS = (6, 7)
DOSES = (1.0, 3.0, 10.0)
STEPS = 500

PRNET_SIZES = dict(adapter_hidden=32, adapter_dim=16, encoder_hidden=32, latent_dim=16, decoder_hidden=32)
CHEMCPA_SIZES = dict(latent_dim=16, hidden=32, depth=2, drug_hidden=32, drug_depth=1, doser_hidden=16,
                     adversary_hidden=32, adversary_depth=1)
# Both models start by predicting ~0 for expression levels ~4.5; at the papers' lr (1e-3) a few hundred steps
# barely reach the level, so the synthetic-task runs use a larger learning rate.
FAST_LR = {"prnet": dict(lr=1e-2), "chemcpa": dict(autoencoder_lr=1e-2)}


# -- synthetic data ----------------------------------------------------------------------------------------
def _task_parameters() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fingerprints (N_DRUGS, D), shift weights (D, G), cell baselines (N_CELLS, G): fixed for all tests."""
    g = torch.Generator().manual_seed(1234)
    fingerprints = (torch.rand(N_DRUGS, D, generator=g) < 0.4).float()
    fingerprints[:, 0] = 1.0  # no all-zero fingerprint
    weights = 0.5 * torch.randn(D, G, generator=g)
    cell_base = 4.0 + torch.rand(N_CELLS, G, generator=g)
    return fingerprints, weights, cell_base


def synthetic_batch(n: int, drugs: tuple[int, ...] = TRAIN_DRUGS, seed: int = 0,
                    cells: tuple[int, ...] = tuple(range(N_CELLS))) -> dict[str, torch.Tensor]:
    """A batch dict with the keys of the data contract; x0 = c_pre + drug/dose-specific shift + noise."""
    fingerprints, weights, cell_base = _task_parameters()
    g = torch.Generator().manual_seed(seed)
    drug_index = torch.tensor(drugs)[torch.randint(len(drugs), (n,), generator=g)]
    cell_index = torch.tensor(cells)[torch.randint(len(cells), (n,), generator=g)]
    dose = torch.tensor(DOSES)[torch.randint(len(DOSES), (n,), generator=g)]
    scale = torch.log10(dose + 1).unsqueeze(1)
    c_pre = cell_base[cell_index] + 0.1 * torch.randn(n, G, generator=g)
    x0 = c_pre + (fingerprints[drug_index] @ weights) * scale + 0.05 * torch.randn(n, G, generator=g)
    return {"x0": x0, "c_pre": c_pre, "c_pert": (fingerprints[drug_index] * scale).unsqueeze(1),
            "c_pert_mask": torch.ones(n, 1, dtype=torch.bool), "dose": dose, "drug_index": drug_index,
            "cell_index": cell_index, "row": torch.arange(n)}


class DictDataset(Dataset):
    """Rows of a batch dict, collated back into batch dicts by the default collate function."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["x0"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.batch.items()}


def loader(batch: dict[str, torch.Tensor], batch_size: int = 64, shuffle: bool = True) -> DataLoader:
    return DataLoader(DictDataset(batch), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(0))


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)


def make_module(name: str, **kwargs) -> PRnetModule | ChemCPAModule:
    if name == "prnet":
        return PRnetModule(n_genes=G, d_pert=D, n_drugs=N_DRUGS, n_cells=N_CELLS, **{**PRNET_SIZES, **kwargs})
    return ChemCPAModule(n_genes=G, d_pert=D, n_drugs=N_DRUGS, n_cells=N_CELLS, **{**CHEMCPA_SIZES, **kwargs})


def training_loss(module: PRnetModule | ChemCPAModule, batch: dict[str, torch.Tensor]) -> float:
    """Reconstruction objective on a batch in eval mode (no dropout, running BatchNorm statistics)."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        if isinstance(module, PRnetModule):
            loss = float(module.losses(batch)["loss"])
        else:
            loss = float(module.autoencoder_losses(batch)["reconstruction"])
    module.train(was_training)
    return loss


def predict(module: PRnetModule | ChemCPAModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    was_training = module.training
    module.eval()
    with torch.no_grad():
        pred = module.predict_batch(batch)
    module.train(was_training)
    return pred


def per_sample_pearson(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).numpy()


@pytest.fixture(scope="module", params=["prnet", "chemcpa"])
def trained(request, tmp_path_factory):
    """A module trained STEPS steps on the synthetic task, its loss before/after, and a saved checkpoint."""
    L.seed_everything(0, verbose=False)
    module = make_module(request.param, **FAST_LR[request.param])
    probe = synthetic_batch(256, seed=99)
    loss_before = training_loss(module, probe)
    trainer = quiet_trainer(max_steps=STEPS, limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=loader(synthetic_batch(512, seed=1)))
    path = tmp_path_factory.mktemp(request.param) / "model.ckpt"
    trainer.save_checkpoint(path)
    return {"name": request.param, "module": module, "loss_before": loss_before,
            "loss_after": training_loss(module, probe), "checkpoint": path}


# -- building blocks ---------------------------------------------------------------------------------------
def test_drug_vector_is_the_masked_mean_of_the_tokens():
    tokens = torch.randn(3, 4, 5)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False], [True, True, True, True]])
    batch = {"c_pert": tokens, "c_pert_mask": mask, "c_pre": torch.zeros(3, 2)}
    expected = torch.stack([tokens[0, :2].mean(0), tokens[1, 0], tokens[2].mean(0)])
    torch.testing.assert_close(drug_vector(batch), expected)


def test_gaussian_nll_equals_minus_normal_log_prob():
    g = torch.Generator().manual_seed(0)
    mean, target = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    var = torch.rand(4, 7, generator=g) + 0.1
    expected = -torch.distributions.Normal(mean, var.sqrt()).log_prob(target).mean()
    torch.testing.assert_close(gaussian_nll(mean, var, target), expected)


def test_prnet_gives_a_nonnegative_mean_and_positive_variance_per_gene():
    net = PRnet(G, D, **PRNET_SIZES)
    mean, var = net(torch.randn(5, G), torch.rand(5, D))
    assert mean.shape == var.shape == (5, G)
    assert (mean >= 0).all() and (var > 0).all()
    assert net.latent(torch.randn(5, G), torch.rand(5, D)).shape == (5, PRNET_SIZES["latent_dim"])


@pytest.mark.parametrize("predict_mode", ["mean", "sample"])
def test_prnet_predictions_are_deterministic_in_eval(predict_mode):
    module = make_module("prnet", predict_mode=predict_mode)
    batch = synthetic_batch(8)
    torch.testing.assert_close(predict(module, batch), predict(module, batch))


def test_prnet_samples_by_default_as_its_test_code_does():
    batch = synthetic_batch(8)
    sample_module = make_module("prnet")
    assert sample_module.hparams.predict_mode == "sample"
    mean_module = make_module("prnet", predict_mode="mean")
    mean_module.load_state_dict(sample_module.state_dict())
    sample = predict(sample_module, batch)
    assert not torch.allclose(predict(mean_module, batch), sample)
    assert torch.isfinite(sample).all()
    # mean and sd are clamped to [1e-3, 1e3] before sampling: a negative mean with zero variance gives ~1e-3
    sample_module.model.forward = lambda c_pre, drug, noise=None: (torch.full_like(c_pre, -5.0),
                                                                    torch.zeros_like(c_pre))
    clamped = predict(sample_module, batch)
    assert ((clamped - 1e-3).abs() < 6e-3).all() and clamped.std() > 0


def test_prnet_rejects_an_unknown_predict_mode():
    with pytest.raises(ValueError, match="predict_mode"):
        make_module("prnet", predict_mode="median")


@pytest.mark.parametrize("dose_encoder", ["amortized", "sigmoid", "logsigmoid"])
def test_chemcpa_shapes(dose_encoder):
    net = ChemCPA(G, D, N_DRUGS, N_CELLS, dose_encoder=dose_encoder, **CHEMCPA_SIZES)
    b = synthetic_batch(6)
    mean, var, basal = net(b["x0"], drug_vector(b), b["dose"], b["drug_index"], b["cell_index"])
    assert mean.shape == var.shape == (6, G) and (var > 0).all()
    assert basal.shape == (6, CHEMCPA_SIZES["latent_dim"])
    drug_logits, cell_logits = net.adversary_logits(basal)
    assert drug_logits.shape == (6, N_DRUGS) and cell_logits.shape == (6, N_CELLS)


def test_chemcpa_rejects_an_unknown_dose_encoder():
    with pytest.raises(ValueError, match="dose_encoder"):
        ChemCPA(G, D, N_DRUGS, N_CELLS, dose_encoder="hill", **CHEMCPA_SIZES)


@pytest.mark.parametrize("dose_encoder", ["sigmoid", "logsigmoid"])
def test_chemcpa_sigmoid_dose_response_is_zero_at_dose_zero_and_averages_seen_drugs(dose_encoder):
    net = ChemCPA(G, D, N_DRUGS, N_CELLS, dose_encoder=dose_encoder, **CHEMCPA_SIZES)
    with torch.no_grad():
        net.dose_response.beta.copy_(torch.arange(N_DRUGS, dtype=torch.float32))
        net.dose_response.bias.copy_(torch.linspace(-1, 1, N_DRUGS))
    net.mark_seen(torch.tensor([0, 1]), torch.tensor([0]))
    embedding = torch.ones(3, CHEMCPA_SIZES["latent_dim"])
    with torch.no_grad():
        response = net.dose_response(embedding, torch.tensor([0.0, 2.0, 2.0]), torch.tensor([0, 7, 1]),
                                     net.seen_drugs)
    assert response[0] == 0
    # drug 7 was never seen: it responds like a drug with the mean parameters of drugs 0 and 1
    beta, bias = 0.5, float((net.dose_response.bias[0] + net.dose_response.bias[1]).detach() / 2)
    x = np.log1p(2.0) if dose_encoder == "logsigmoid" else 2.0
    expected = 1 / (1 + np.exp(-(x * beta + bias))) - 1 / (1 + np.exp(-bias))
    assert float(response[1]) == pytest.approx(expected, rel=1e-5)


def test_chemcpa_unseen_cell_line_gets_the_mean_embedding_of_the_seen_ones():
    module = make_module("chemcpa")
    net = module.model
    net.mark_seen(torch.tensor([0, 1]), torch.tensor([0, 1]))
    expected = net.cell_embedding.weight[:2].mean(0)
    torch.testing.assert_close(net.cell_embeddings(torch.tensor([2]))[0], expected)
    torch.testing.assert_close(net.cell_embeddings(torch.tensor([1]))[0], net.cell_embedding.weight[1])
    batch = synthetic_batch(4, cells=(2,))
    assert torch.isfinite(predict(module, batch)).all()


# -- a drug or cell line outside the dataset's list (index -1, e.g. a new SMILES given to `pertdit predict`) ------
@pytest.mark.parametrize("dose_encoder", ["sigmoid", "logsigmoid"])
def test_chemcpa_a_drug_outside_the_dataset_gets_the_seen_mean_dose_response_not_the_last_drugs(dose_encoder):
    net = ChemCPA(G, D, N_DRUGS, N_CELLS, dose_encoder=dose_encoder, **CHEMCPA_SIZES)
    with torch.no_grad():
        net.dose_response.beta.copy_(torch.arange(1, N_DRUGS + 1, dtype=torch.float32))
        net.dose_response.bias.copy_(torch.linspace(-1, 1, N_DRUGS))
    net.mark_seen(torch.tensor([0, 1, N_DRUGS - 1]), torch.tensor([0]))  # the last drug was seen
    embedding = torch.ones(3, CHEMCPA_SIZES["latent_dim"])
    with torch.no_grad():
        outside, never_seen, last = net.dose_response(embedding, torch.full((3,), 2.0),
                                                      torch.tensor([-1, 6, N_DRUGS - 1]), net.seen_drugs)
    assert float(outside) == pytest.approx(float(never_seen), rel=1e-6)  # as a listed drug training never saw
    assert abs(float(outside) - float(last)) > 1e-3  # not the last drug's parameters (index -1's old meaning)
    seen = torch.tensor([0, 1, N_DRUGS - 1])
    beta, bias = (float(p.detach()[seen].mean()) for p in (net.dose_response.beta, net.dose_response.bias))
    x = np.log1p(2.0) if dose_encoder == "logsigmoid" else 2.0
    assert float(outside) == pytest.approx(1 / (1 + np.exp(-(x * beta + bias))) - 1 / (1 + np.exp(-bias)),
                                           rel=1e-5)


def test_chemcpa_amortized_dose_response_embeds_a_drug_outside_the_dataset_from_its_representation():
    """ChemCPA's way for unseen drugs (its default doser): the drug index is not read at all."""
    net = ChemCPA(G, D, N_DRUGS, N_CELLS, dose_encoder="amortized", **CHEMCPA_SIZES).eval()
    net.mark_seen(torch.tensor([0, 1]), torch.tensor([0]))
    vector, dose = torch.rand(1, D), torch.tensor([3.0])
    with torch.no_grad():
        outside = net.drug_embedding(vector, dose, torch.tensor([-1]))
        listed = net.drug_embedding(vector, dose, torch.tensor([1]))
        other = net.drug_embedding(torch.rand(1, D), dose, torch.tensor([-1]))
    torch.testing.assert_close(outside, listed)
    assert not torch.allclose(outside, other)


def test_chemcpa_a_cell_line_outside_the_dataset_gets_the_mean_embedding_of_the_seen_ones():
    net = ChemCPA(G, D, N_DRUGS, N_CELLS, **CHEMCPA_SIZES)
    net.mark_seen(torch.tensor([0]), torch.tensor([0, N_CELLS - 1]))
    expected = net.cell_embedding.weight[[0, N_CELLS - 1]].mean(0)
    torch.testing.assert_close(net.cell_embeddings(torch.tensor([-1]))[0], expected)


@pytest.mark.parametrize("index", [-2, N_DRUGS])
def test_chemcpa_a_drug_index_outside_minus_one_to_n_drugs_is_an_error(index):
    net = ChemCPA(G, D, N_DRUGS, N_CELLS, dose_encoder="sigmoid", **CHEMCPA_SIZES)
    with pytest.raises(IndexError, match=r"outside \[-1, 8\)"):
        net.dose_response(torch.ones(1, CHEMCPA_SIZES["latent_dim"]), torch.tensor([1.0]), torch.tensor([index]),
                          net.seen_drugs)


@pytest.mark.parametrize("schedule, pattern", [("chemcpa", ["adversary", "autoencoder", "autoencoder"]),
                                               ("cpa", ["autoencoder", "adversary", "adversary"])])
def test_chemcpa_alternates_adversary_and_autoencoder_updates(schedule, pattern):
    """ChemCPA's code updates the adversaries on steps i % 3 == 0, CPA's on i % 3 != 0."""
    class RecordUpdates(L.Callback):
        def __init__(self) -> None:
            self.updated: list[str] = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.before = (module.model.encoder[0].weight.detach().clone(),
                           module.model.drug_adversary[0].weight.detach().clone())

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            encoder = not torch.equal(self.before[0], module.model.encoder[0].weight)
            adversary = not torch.equal(self.before[1], module.model.drug_adversary[0].weight)
            self.updated.append({(True, False): "autoencoder", (False, True): "adversary"}.get(
                (encoder, adversary), f"encoder={encoder}, adversary={adversary}"))

    L.seed_everything(0, verbose=False)
    module = make_module("chemcpa", adversary_steps=3, adversary_schedule=schedule)
    record = RecordUpdates()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet_trainer(max_steps=7, limit_val_batches=0, callbacks=[record]).fit(
            module, train_dataloaders=loader(synthetic_batch(64), batch_size=16))
    assert record.updated == pattern * 2 + pattern[:1]
    assert int(module.iteration) == 7


def test_chemcpa_gradient_penalty_is_one_per_adversary():
    """As CPA's and ChemCPA's code: mean (d sum(logits) / d basal)^2 for each adversary, not of their sum."""
    module = make_module("chemcpa").train()
    batch = synthetic_batch(32)
    basal = torch.randn(32, CHEMCPA_SIZES["latent_dim"], requires_grad=True)
    terms = module.adversary_losses(basal, batch)
    for name, adversary in (("drug", module.model.drug_adversary), ("cell", module.model.cell_adversary)):
        (grad,) = torch.autograd.grad(adversary(basal).sum(), basal)
        torch.testing.assert_close(terms[f"grad_penalty_{name}"], grad.pow(2).mean())
    (joint,) = torch.autograd.grad(sum(a(basal).sum() for a in (module.model.drug_adversary,
                                                                 module.model.cell_adversary)), basal)
    assert not torch.isclose(terms["grad_penalty_drug"] + terms["grad_penalty_cell"], joint.pow(2).mean())
    terms["grad_penalty_drug"].backward()  # differentiable: it trains the adversary
    assert module.model.drug_adversary[0].weight.grad.abs().sum() > 0


def test_chemcpa_learning_rates_decay_every_lr_step_size_epochs():
    module = make_module("chemcpa", lr_step_size=2, lr_gamma=0.5, autoencoder_lr=1e-3, adversary_lr=4e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet_trainer(max_epochs=5, limit_val_batches=0).fit(
            module, train_dataloaders=loader(synthetic_batch(32), batch_size=16))
    autoencoder, adversary = module.optimizers()
    assert autoencoder.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**2)  # decayed after epochs 2 and 4
    assert adversary.param_groups[0]["lr"] == pytest.approx(4e-4 * 0.5**2)


def test_chemcpa_rejects_an_unknown_adversary_schedule():
    with pytest.raises(ValueError, match="adversary_schedule"):
        make_module("chemcpa", adversary_schedule="sometimes")


# -- training on the synthetic task ------------------------------------------------------------------------
def test_training_lowers_the_loss(trained):
    assert trained["loss_after"] < trained["loss_before"] - 0.5, trained


def test_trained_model_beats_predicting_the_control(trained):
    batch = synthetic_batch(256, seed=7)
    pred = predict(trained["module"], batch)
    control_mse = float(((batch["c_pre"] - batch["x0"]) ** 2).mean())
    model_mse = float(((pred - batch["x0"]) ** 2).mean())
    pcc = per_sample_pearson(pred - batch["c_pre"], batch["x0"] - batch["c_pre"])
    assert model_mse < 0.8 * control_mse, (model_mse, control_mse)
    assert np.nanmean(pcc) > 0.5, np.nanmean(pcc)


def test_trained_model_generalises_to_unseen_drugs_through_their_representation(trained):
    batch = synthetic_batch(256, drugs=UNSEEN_DRUGS, seed=8)
    pred = predict(trained["module"], batch)
    pcc = per_sample_pearson(pred - batch["c_pre"], batch["x0"] - batch["c_pre"])
    assert np.nanmean(pcc) > 0.3, np.nanmean(pcc)


def test_unseen_drugs_get_predictions_that_depend_on_their_representation(trained):
    module = trained["module"]
    if isinstance(module, ChemCPAModule):
        assert not module.model.seen_drugs[list(UNSEEN_DRUGS)].any()
    first = synthetic_batch(32, drugs=(UNSEEN_DRUGS[0],), seed=3)
    second = dict(first, drug_index=torch.full_like(first["drug_index"], UNSEEN_DRUGS[1]),
                  c_pert=synthetic_batch(32, drugs=(UNSEEN_DRUGS[1],), seed=3)["c_pert"])
    pred_first, pred_second = predict(module, first), predict(module, second)
    assert pred_first.shape == (32, G) and torch.isfinite(pred_first).all()
    assert (pred_first - pred_second).abs().mean() > 1e-3


def test_checkpoint_round_trips(trained):
    cls = type(trained["module"])
    loaded = cls.load_from_checkpoint(trained["checkpoint"])
    batch = synthetic_batch(32, drugs=TRAIN_DRUGS + UNSEEN_DRUGS, seed=5)
    torch.testing.assert_close(predict(loaded, batch), predict(trained["module"], batch))
    assert loaded.hparams == trained["module"].hparams
    if isinstance(loaded, ChemCPAModule):
        assert torch.equal(loaded.model.seen_drugs, trained["module"].model.seen_drugs)
        assert int(loaded.iteration) == STEPS


@pytest.mark.parametrize("name", ["prnet", "chemcpa"])
def test_validation_runs_through_the_base_metrics(name):
    module = make_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val_loader = loader(synthetic_batch(64), batch_size=32, shuffle=False)
        (metrics,) = quiet_trainer().validate(module, val_loader, verbose=False)
    assert np.isfinite(metrics["val/mse"])


@pytest.mark.parametrize("name, cls", [("prnet", PRnetModule), ("chemcpa", ChemCPAModule)])
def test_hydra_config_lists_every_hyperparameter_and_instantiates(name, cls):
    cfg = OmegaConf.load(CONFIG_DIR / "model" / f"{name}.yaml")
    data_keys = {"n_genes", "d_pert", "n_drugs", "n_cells"}
    params = {k for k, p in inspect.signature(cls.__init__).parameters.items()
              if k != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}
    assert set(cfg) - {"_target_"} == params - data_keys
    module = instantiate(cfg, n_genes=G, d_pert=D, n_drugs=N_DRUGS, n_cells=N_CELLS)
    assert isinstance(module, cls)
