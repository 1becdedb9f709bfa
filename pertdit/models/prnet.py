"""PRnet (Qi et al., Nat. Commun. 2024): a perturbation-conditioned generator of expression profiles.

Three parts, as the paper names them:
- Perturb-adapter: drug vector (FCFP4 x log10(dose + 1)) -> a small perturbation embedding;
- Perturb-encoder: [control profile, perturbation embedding] -> latent;
- Perturb-decoder: [latent, perturbation embedding, N(0, 1) noise] -> Gaussian mean and variance per gene.
Written from the paper and DESIGN.md ("Baselines"); see docs/baselines.md for the choices.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class HiddenLayer(nn.Sequential):
    """Linear (no bias: BatchNorm shifts) -> BatchNorm -> LeakyReLU -> Dropout: (B, in) -> (B, out)."""

    def __init__(self, in_features: int, out_features: int, leaky_slope: float, dropout: float) -> None:
        super().__init__(
            nn.Linear(in_features, out_features, bias=False),
            nn.BatchNorm1d(out_features),
            nn.LeakyReLU(leaky_slope),
            nn.Dropout(dropout),
        )


class PerturbAdapter(nn.Module):
    """Drug vector (B, D) -> perturbation embedding (B, adapter_dim); linear, as in the authors' code."""

    def __init__(self, d_pert: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_pert, hidden, bias=False), nn.Linear(hidden, out_dim))

    def forward(self, drug_vector: torch.Tensor) -> torch.Tensor:
        return self.net(drug_vector)


class PerturbEncoder(nn.Module):
    """[control (B, G), perturbation embedding (B, A)] -> latent (B, latent_dim)."""

    def __init__(self, n_genes: int, adapter_dim: int, hidden: int, latent_dim: int, leaky_slope: float,
                 dropout: float) -> None:
        super().__init__()
        self.hidden = HiddenLayer(n_genes + adapter_dim, hidden, leaky_slope, dropout)
        self.out = nn.Linear(hidden, latent_dim)

    def forward(self, c_pre: torch.Tensor, pert: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(torch.cat([c_pre, pert], dim=1)))


class PerturbDecoder(nn.Module):
    """[latent, perturbation embedding, noise] (B, Z + A + N) -> mean (B, G), variance (B, G)."""

    def __init__(self, in_features: int, hidden: int, n_genes: int, leaky_slope: float, dropout: float,
                 relu_mean: bool, min_variance: float) -> None:
        super().__init__()
        self.hidden = HiddenLayer(in_features, hidden, leaky_slope, dropout)
        self.out = nn.Linear(hidden, 2 * n_genes)
        self.relu_mean = relu_mean
        self.min_variance = min_variance

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_var = self.out(self.hidden(h)).chunk(2, dim=1)
        if self.relu_mean:
            mean = F.relu(mean)
        return mean, F.softplus(raw_var) + self.min_variance


class PRnet(nn.Module):
    """PRnet: control (B, G) + drug vector (B, D) -> Gaussian mean and variance (B, G) of the response.

    `noise` (B, noise_dim) feeds the decoder; left as None it is drawn from N(0, 1) in training mode and is
    zero (the noise distribution's mean) in eval mode, so evaluation is deterministic.
    """

    def __init__(
        self,
        n_genes: int,
        d_pert: int,
        adapter_hidden: int = 128,
        adapter_dim: int = 64,
        encoder_hidden: int = 128,
        latent_dim: int = 64,
        decoder_hidden: int = 128,
        noise_dim: int = 10,
        dropout: float = 0.05,
        leaky_slope: float = 0.3,
        relu_mean: bool = True,
        min_variance: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_genes = n_genes
        self.noise_dim = noise_dim
        self.adapter = PerturbAdapter(d_pert, adapter_hidden, adapter_dim)
        self.encoder = PerturbEncoder(n_genes, adapter_dim, encoder_hidden, latent_dim, leaky_slope, dropout)
        self.decoder = PerturbDecoder(latent_dim + adapter_dim + noise_dim, decoder_hidden, n_genes,
                                      leaky_slope, dropout, relu_mean, min_variance)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02) linear weights, zero biases, BatchNorm scale near 1 (the authors' initialisation)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm1d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def make_noise(self, batch_size: int, reference: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder noise (B, noise_dim): N(0, 1) in training mode or with a generator, zeros in eval mode."""
        if self.training or generator is not None:
            return torch.randn(batch_size, self.noise_dim, generator=generator, device=reference.device,
                               dtype=reference.dtype)
        return reference.new_zeros(batch_size, self.noise_dim)

    def latent(self, c_pre: torch.Tensor, drug_vector: torch.Tensor) -> torch.Tensor:
        """Perturbed-state latent (B, latent_dim)."""
        return self.encoder(c_pre, self.adapter(drug_vector))

    def forward(self, c_pre: torch.Tensor, drug_vector: torch.Tensor,
                noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """c_pre (B, G), drug_vector (B, D), noise (B, noise_dim) or None -> mean (B, G), variance (B, G)."""
        pert = self.adapter(drug_vector)
        z = self.encoder(c_pre, pert)
        if noise is None:
            noise = self.make_noise(c_pre.shape[0], c_pre)
        return self.decoder(torch.cat([z, pert, noise], dim=1))
