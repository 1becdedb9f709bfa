"""ChemCPA (Hetzel et al., NeurIPS 2022): a compositional perturbation autoencoder with a molecule encoder.

An encoder maps a profile to a *basal* latent that adversarial classifiers try (and are trained to fail) to
read the drug and the cell line from. A perturbed latent is basal + drug embedding x dose response + cell
embedding; the decoder maps it to a Gaussian mean and variance per gene. The drug embedding comes from an MLP
over the drug representation, so drugs never seen in training still get one. Counterfactual prediction:
encode the control, add the embeddings of the wanted drug, dose and cell line, decode.
Written from the paper and DESIGN.md ("Baselines"); see docs/baselines.md for the choices.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(sizes: list[int], dropout: float = 0.0, batch_norm: bool = True) -> nn.Sequential:
    """Linear -> [BatchNorm] -> ReLU -> Dropout between the given widths; the last layer is linear."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def replace_unseen(values: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Rows of `values` (N, ...) whose `seen` (N,) flag is False become the mean of the seen rows.

    Before any row has been seen (an untrained model) the values are returned unchanged.
    """
    if not bool(seen.any()) or bool(seen.all()):
        return values
    fallback = values[seen].mean(dim=0, keepdim=True).expand_as(values)
    mask = seen.view(-1, *([1] * (values.dim() - 1)))
    return torch.where(mask, values, fallback)


def seen_rows(values: torch.Tensor, seen: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows `index` (B,) of `values` (N, ...), where a row never seen in training (`replace_unseen`) and index
    -1 (an entity outside the dataset's list, e.g. a new drug given to `pertdit predict`) both take the mean
    of the seen rows (of all rows before training has seen any). Any other index outside [-1, N) is an error:
    it would silently take another entity's row."""
    n = values.shape[0]
    if index.numel() and (int(index.min()) < -1 or int(index.max()) >= n):
        raise IndexError(f"ChemCPA: index {int(index.min())}..{int(index.max())} outside [-1, {n}) "
                         "(-1 = not in the dataset's list)")
    fallback = (values[seen] if bool(seen.any()) else values).mean(dim=0, keepdim=True)
    table = torch.cat([replace_unseen(values, seen), fallback])
    return table[torch.where(index < 0, torch.full_like(index, n), index)]


class AmortizedDoseResponse(nn.Module):
    """Dose response in (0, 1) from an MLP on [drug embedding, log10(dose + 1)]: (B, E), (B,) -> (B,)."""

    def __init__(self, n_drugs: int, embedding_dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.net = mlp([embedding_dim + 1] + [hidden] * depth + [1], batch_norm=False)

    def forward(self, drug_embedding: torch.Tensor, dose: torch.Tensor, drug_index: torch.Tensor,
                seen_drugs: torch.Tensor) -> torch.Tensor:
        log_dose = torch.log10(dose.clamp(min=0) + 1).unsqueeze(1).to(drug_embedding.dtype)
        return torch.sigmoid(self.net(torch.cat([drug_embedding, log_dose], dim=1))).squeeze(1)


class SigmoidDoseResponse(nn.Module):
    """Per-drug response sigmoid(f(dose) beta + b) - sigmoid(b), zero at dose 0; f = identity or log1p.

    Drugs never seen in training, and drug index -1 (a drug outside the dataset's list, which ChemCPA's
    per-drug doser has no parameters for), take the mean (beta, b) of the seen drugs (`seen_rows`).
    """

    def __init__(self, n_drugs: int, embedding_dim: int, hidden: int, depth: int,
                 log_dose: bool = False) -> None:
        super().__init__()
        self.log_dose = log_dose
        self.beta = nn.Parameter(torch.ones(n_drugs))
        self.bias = nn.Parameter(torch.zeros(n_drugs))

    def forward(self, drug_embedding: torch.Tensor, dose: torch.Tensor, drug_index: torch.Tensor,
                seen_drugs: torch.Tensor) -> torch.Tensor:
        params = seen_rows(torch.stack([self.beta, self.bias], dim=1), seen_drugs, drug_index)
        beta, bias = params[:, 0], params[:, 1]
        dose = dose.clamp(min=0).to(drug_embedding.dtype)
        x = torch.log1p(dose) if self.log_dose else dose
        return torch.sigmoid(x * beta + bias) - torch.sigmoid(bias)


class LogSigmoidDoseResponse(SigmoidDoseResponse):
    """`SigmoidDoseResponse` on log(1 + dose)."""

    def __init__(self, n_drugs: int, embedding_dim: int, hidden: int, depth: int) -> None:
        super().__init__(n_drugs, embedding_dim, hidden, depth, log_dose=True)


DOSE_ENCODERS: dict[str, type[nn.Module]] = {
    "amortized": AmortizedDoseResponse,
    "sigmoid": SigmoidDoseResponse,
    "logsigmoid": LogSigmoidDoseResponse,
}


class ChemCPA(nn.Module):
    """ChemCPA network: encoder, decoder (mean, variance), drug embedder, dose response, cell embeddings,
    and the drug and cell adversaries on the basal latent.

    `seen_drugs` / `seen_cells` (buffers, saved in checkpoints) record what training has shown the model
    (`mark_seen`). A cell line never seen in training gets the mean embedding of the seen cell lines; a
    drug never seen gets its embedding from the drug embedder (and, for the per-drug sigmoid dose responses,
    the mean parameters of the seen drugs).
    """

    def __init__(
        self,
        n_genes: int,
        d_pert: int,
        n_drugs: int,
        n_cells: int,
        latent_dim: int = 32,
        hidden: int = 256,
        depth: int = 4,
        dose_encoder: str = "amortized",
        drug_hidden: int = 128,
        drug_depth: int = 4,
        doser_hidden: int = 64,
        doser_depth: int = 3,
        adversary_hidden: int = 128,
        adversary_depth: int = 3,
        dropout: float = 0.0,
        normalize_drug_vector: bool = True,
        min_variance: float = 1e-4,
    ) -> None:
        super().__init__()
        if dose_encoder not in DOSE_ENCODERS:
            raise ValueError(f"ChemCPA: unknown dose_encoder {dose_encoder!r}; "
                             f"choose one of {sorted(DOSE_ENCODERS)}")
        self.normalize_drug_vector = normalize_drug_vector
        self.min_variance = min_variance
        self.encoder = mlp([n_genes] + [hidden] * depth + [latent_dim], dropout)
        self.decoder = mlp([latent_dim] + [hidden] * depth + [2 * n_genes], dropout)
        self.drug_embedder = mlp([d_pert] + [drug_hidden] * drug_depth + [latent_dim], dropout)
        self.dose_response = DOSE_ENCODERS[dose_encoder](n_drugs, latent_dim, doser_hidden, doser_depth)
        self.cell_embedding = nn.Embedding(n_cells, latent_dim)
        self.drug_adversary = mlp([latent_dim] + [adversary_hidden] * adversary_depth + [n_drugs])
        self.cell_adversary = mlp([latent_dim] + [adversary_hidden] * adversary_depth + [n_cells])
        self.register_buffer("seen_drugs", torch.zeros(n_drugs, dtype=torch.bool))
        self.register_buffer("seen_cells", torch.zeros(n_cells, dtype=torch.bool))

    # -- bookkeeping ----------------------------------------------------------------------------------------
    def adversary_parameters(self) -> list[nn.Parameter]:
        """Parameters of the two adversarial classifiers."""
        return [*self.drug_adversary.parameters(), *self.cell_adversary.parameters()]

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the adversaries' (encoder, decoder, embeddings, dose response)."""
        adversary = {id(p) for p in self.adversary_parameters()}
        return [p for p in self.parameters() if id(p) not in adversary]

    @torch.no_grad()
    def mark_seen(self, drug_index: torch.Tensor, cell_index: torch.Tensor) -> None:
        """Record the drugs (B,) and cell lines (B,) of a training batch."""
        self.seen_drugs[drug_index] = True
        self.seen_cells[cell_index] = True

    # -- parts ----------------------------------------------------------------------------------------------
    def encode(self, genes: torch.Tensor) -> torch.Tensor:
        """Basal latent (B, latent_dim) of profiles (B, G)."""
        return self.encoder(genes)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent (B, latent_dim) -> mean (B, G), variance (B, G)."""
        mean, raw_var = self.decoder(z).chunk(2, dim=1)
        return mean, F.softplus(raw_var) + self.min_variance

    def drug_embedding(self, drug_vector: torch.Tensor, dose: torch.Tensor,
                       drug_index: torch.Tensor) -> torch.Tensor:
        """Drug vector (B, D), dose (B,) µM, drug index (B,) -> dose-scaled embedding (B, latent_dim)."""
        if self.normalize_drug_vector:
            drug_vector = F.normalize(drug_vector, dim=1, eps=1e-8)
        embedding = self.drug_embedder(drug_vector)
        scale = self.dose_response(embedding, dose, drug_index, self.seen_drugs)
        return scale.unsqueeze(1) * embedding

    def cell_embeddings(self, cell_index: torch.Tensor) -> torch.Tensor:
        """Cell-line embedding (B, latent_dim); unseen cell lines (and index -1, a cell line outside the
        dataset's list) get the mean of the seen ones."""
        return seen_rows(self.cell_embedding.weight, self.seen_cells, cell_index)

    def adversary_logits(self, basal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Basal latent (B, latent_dim) -> drug logits (B, n_drugs), cell logits (B, n_cells)."""
        return self.drug_adversary(basal), self.cell_adversary(basal)

    # -- whole model ----------------------------------------------------------------------------------------
    def forward(self, genes: torch.Tensor, drug_vector: torch.Tensor | None, dose: torch.Tensor | None,
                drug_index: torch.Tensor | None,
                cell_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode profiles (B, G), add drug (None: no drug, as for a control) and cell embeddings, decode.

        Returns mean (B, G), variance (B, G) and the basal latent (B, latent_dim).
        """
        basal = self.encode(genes)
        z = basal + self.cell_embeddings(cell_index)
        if drug_vector is not None:
            z = z + self.drug_embedding(drug_vector, dose, drug_index)
        mean, var = self.decode(z)
        return mean, var, basal
