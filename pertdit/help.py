"""`pertdit train|data|embed --help`: what the command does, its config groups and main keys.

Hydra's own `--help` prints "<script> is powered by Hydra" and the whole training config, whatever the
subcommand. These pages are titled with the subcommand; the group options are listed from the config folder,
so they never go stale. Hydra's page stays reachable with `--hydra-help`, the composed config with
`--cfg job`.
"""

from __future__ import annotations

import textwrap

import yaml

from pertdit.config import CONFIG_DIR

WIDTH = 100
SUMMARY = {
    "train": "train a model on a split of the data, then test it on the split's held-out profiles",
    "data": "preprocess the configured dataset, form the split, report every dropped compound and why, and "
            "write dataset.h5ad",
    "embed": "precompute the drug representation of every (SMILES, dose) of the dataset into the embedding "
             "cache (then training reads it from disk)",
}
USAGE = {
    "train": ["pertdit train [GROUP=OPTION ...] [KEY=VALUE ...] [--multirun]",
              "pertdit train --resume RUN_DIR [KEY=VALUE ...]"],
    "data": ["pertdit data [data=OPTION] [split=OPTION] [KEY=VALUE ...]"],
    "embed": ["pertdit embed [perturbation=OPTION] [KEY=VALUE ...]"],
}
GROUPS = {
    "train": ["model", "preset", "data", "split", "perturbation", "diffusion", "trainer", "callbacks",
              "logger", "eval", "method", "scale", "experiment"],
    "data": ["data", "split"],
    "embed": ["perturbation", "data", "split"],
}
KEYS = {
    "train": [
        ("seed=0", "seed of the initialisation, the training noise and the split's held-out draw"),
        ("trainer.max_epochs=100", "epochs at most (early stopping may end the run before)"),
        ("data.batch_size=64", "training batch size"),
        ("callbacks.early_stopping.patience=10", "validations without a better val/mse before stopping,"),
        ("callbacks.early_stopping.min_epochs=60", "  counted from this epoch on"),
        ("trainer.fast_dev_run=true", "a smoke test: one batch per stage; writes metrics.smoke.csv"),
        ("ckpt_path=RUN_DIR|FILE|last", "resume from a run folder's last.ckpt, a checkpoint file"),
        ("paths.data_dir=DIR", "the data folder (default $PERTDIT_DATA, else ../shared/data)"),
        ("hydra.run.dir=DIR", "the run folder (default outputs/runs/<task_name>/<date>)"),
    ],
    "data": [
        ("data.preprocess.transform=prnet", "prnet (clip, normalize_total, log1p; the authors') | none"),
        ("data.preprocess.min_observations=5", "compounds with fewer profiles are dropped (and named)"),
        ("paths.data_dir=DIR", "the data folder (default $PERTDIT_DATA, else ../shared/data)"),
        ("paths.cache_dir=DIR", "preprocessed datasets are cached here (default $PERTDIT_CACHE)"),
        ("hydra.run.dir=DIR", "where dataset.h5ad is written"),
    ],
    "embed": [
        ("perturbation.encoder_local_dir=DIR", "a text encoder folder (save_pretrained; else the HF cache)"),
        ("perturbation.describer=auto", "auto | rdkit | captioner: how SMILES become descriptions"),
        ("paths.cache_dir=DIR", "the embedding cache (default $PERTDIT_CACHE/embeddings)"),
    ],
}
EXAMPLES = {
    "train": ["pertdit train model=crossdit preset=cpu_quick        # the quick CPU recipe, minutes",
              "pertdit train model=prnet split=drug_fold split.fold=2",
              "pertdit train model=catcrossdit preset=gpu_paper data=geo  # the paper's recipe on one GPU",
              "pertdit train --resume outputs/runs/train/2026-11-30_12-00-00 trainer.max_epochs=300"],
    "data": ["pertdit data", "pertdit data data=geo split=cell_fold split.fold=1"],
    "embed": ["pertdit embed perturbation=text perturbation.encoder_local_dir=/models/BioLinkBERT-large"],
}
OUTPUTS = {
    "train": "writes a run folder: config.yaml, checkpoints/ (best by val/mse; last.ckpt every epoch), "
             "csv/metrics.csv (training log), metrics.csv (the 10 test measures), PRED.h5ad (test "
             "predictions)",
    "data": "writes dataset.h5ad in the run folder and prints the dataset, the dropped compounds and the "
            "split",
    "embed": "writes one cache entry under paths.cache_dir/embeddings and prints its path",
}


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files of its folder, without extension, sorted."""
    folder = CONFIG_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def default_choices() -> dict[str, str]:
    """The group defaults of the train config (`pertdit/conf/train.yaml`)."""
    choices: dict[str, str] = {}
    for entry in yaml.safe_load((CONFIG_DIR / "train.yaml").read_text()).get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if "/" not in key and "@" not in key:
                    choices[key] = "none" if value is None else str(value)
    return choices


def command_help(command: str) -> str:
    """The `--help` page of `pertdit <command>` for a Hydra-configured command (train, data, embed)."""
    defaults = default_choices()
    lines = [*textwrap.wrap(f"pertdit {command}: {SUMMARY[command]}.", WIDTH), "", "usage:"]
    lines += [f"  {u}" for u in USAGE[command]]
    lines += ["", *textwrap.wrap(OUTPUTS[command][0].upper() + OUTPUTS[command][1:] + ".", WIDTH), "",
              "config groups (GROUP=OPTION; * = default):"]
    for group in GROUPS[command]:
        default = defaults.get(group)
        options = [f"{o}*" if o == default else o for o in group_options(group)]
        lines.append(f"  {group:<13}{', '.join(options)}")
    lines += ["", "main keys (KEY=VALUE):"]
    lines += [f"  {key:<40}{text}" for key, text in KEYS[command]]
    lines += ["", "examples:"] + [f"  {e}" for e in EXAMPLES[command]]
    lines += ["", *textwrap.wrap(f"Configs: {CONFIG_DIR}. The composed config: pertdit {command} [overrides] "
                                 "--cfg job; Hydra's options: --hydra-help. Docs: README.md \"Using it\", "
                                 "docs/usage.md.", WIDTH)]
    return "\n".join(lines)


def wants_help(argv: list[str]) -> bool:
    """True when the arguments ask for this help page (`-h`/`--help`, not Hydra's `--hydra-help`)."""
    return any(a in ("-h", "--help") for a in argv)

