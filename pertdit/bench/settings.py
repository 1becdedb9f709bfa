"""How big and how long each benchmark runs: one `BenchSettings` per device (CPU, CUDA) and for `--quick`.

Sizes are Hydra overrides of the `model.backbone` group, so every benchmark builds its model through the
project's own configs (pertdit/conf/model/*.yaml).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class ModelSize:
    """Backbone size keywords (the constructor keywords every backbone shares)."""

    d_model: int = 256
    n_layers: int = 2
    n_heads: int = 4
    mlp_hidden: int = 256
    time_embed_dim: int = 512

    def overrides(self) -> list[str]:
        """Hydra overrides that give `model.backbone` this size."""
        return [f"model.backbone.{key}={value}" for key, value in asdict(self).items()]

    def describe(self) -> str:
        return (f"d_model {self.d_model}, {self.n_layers} layer(s), {self.n_heads} head(s), MLP hidden "
                f"{self.mlp_hidden}, timestep embedding {self.time_embed_dim}")


AUTHORS = ModelSize()
SMALL = ModelSize(d_model=32, n_layers=1, n_heads=2, mlp_hidden=64, time_embed_dim=64)
TINY = ModelSize(d_model=16, n_layers=1, n_heads=1, mlp_hidden=16, time_embed_dim=16)

# model configs (pertdit/conf/model/<name>.yaml) of the four diffusion backbones
MODELS: tuple[str, ...] = ("crossdit", "catcrossdit", "adadit_rdkit", "catonlycrossdit")
SECTIONS: tuple[str, ...] = ("training", "sampling", "attention", "memory", "loading", "scaling", "datascale")


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and repeat counts of every section on one device."""

    size: ModelSize = AUTHORS            # the timed size (training, attention, memory, sampling speed)
    batch_size: int = 64
    models: tuple[str, ...] = MODELS
    warmup: int = 1                      # untimed steps before timing
    warmup_batch: int | None = 4         # batch of the warm-up steps (None: batch_size)
    repeats: int = 2                     # timed steps; the median is reported
    attention_batch: int = 16
    attention_repeats: int = 2
    memory_model: str = "crossdit"
    memory_batches: tuple[int, ...] = (8, 32, 64)
    memory_naive_batches: tuple[int, ...] = (8, 32)
    sampling_model: str = "crossdit"     # timed-size sampling speed
    sampling_full: bool = False          # time whole sampling runs (else one denoising step x steps)
    sampling_repeats: int = 1
    test_profiles: int | None = None     # sample only the first N test/validation profiles (None: all)
    accuracy_model: str = "catonlycrossdit"
    accuracy_size: ModelSize = SMALL
    accuracy_epochs: int = 150
    accuracy_seeds: int = 3              # sampling seeds per sampler in the accuracy table
    loader_min_batches: int = 300
    loader_min_seconds: float = 1.0
    scaling_model: str = "crossdit"
    scaling_size: ModelSize = TINY
    profile_factors: tuple[int, ...] = (1, 4, 16)
    gene_counts: tuple[int, ...] = (978, 1956, 3912)
    scaling_base_rows: int | None = None  # 1x = the first N training rows (None: all of them)
    scaling_batch: int | None = None      # loader batch of the scaling epochs (None: the data config's)
    autocast_bf16: bool = False          # bf16 autocast, as pertdit/conf/trainer/gpu.yaml trains on GPU
    scale_profiles: tuple[int, ...] = (20_000, 100_000, 400_000)  # synthetic GEO release sizes (datascale)
    scale_keep: bool = False             # keep every release (else only the largest until the loader is timed)
    scale_warm: bool = True              # also time `pertdit data` on a warm cache
    scale_loader_batches: int = 1000     # batches of 64 read from the memory-mapped cache
    scale_loader_workers: tuple[int, ...] = (0, 2)
    scale_eval_profiles: int = 100_000   # test profiles scored by the streaming metric
    scale_eval_group_sizes: tuple[int, ...] = (1, 4)
    gpu_sustained_tflops: float = 100.0  # ASSUMED GPU rate for the estimated GPU step (no GPU measured)


CPU = BenchSettings()
CUDA = replace(CPU, warmup=3, warmup_batch=None, repeats=10, attention_batch=64, attention_repeats=10,
               memory_batches=(16, 64, 256), memory_naive_batches=(16, 64, 256), sampling_full=True,
               sampling_repeats=3, scaling_size=AUTHORS, autocast_bf16=True)
QUICK = replace(CPU, size=TINY, batch_size=8, repeats=1, attention_batch=2,
                attention_repeats=1, memory_batches=(4,), memory_naive_batches=(), warmup_batch=2,
                test_profiles=8, accuracy_size=TINY, accuracy_epochs=1, accuracy_seeds=1, loader_min_batches=5,
                loader_min_seconds=0.0, profile_factors=(1, 2), gene_counts=(978, 1956), scaling_base_rows=16,
                scaling_batch=8, scale_profiles=(600, 1200), scale_warm=False, scale_loader_batches=10,
                scale_loader_workers=(0,), scale_eval_profiles=2000, scale_eval_group_sizes=(4,))


def settings_for(device: str, quick: bool = False) -> BenchSettings:
    """The settings of `device` ("cpu" or "cuda"); `quick` gives the tiny smoke-test settings."""
    if quick:
        return replace(QUICK, autocast_bf16=device == "cuda")
    return CUDA if device == "cuda" else CPU
