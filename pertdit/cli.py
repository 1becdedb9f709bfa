"""`pertdit train | evaluate | embed | data | demo | predict`: the command line of PertDiT."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pertdit.console import configure_console
from pertdit.errors import PertDiTError
from pertdit.help import command_help, wants_help

log = logging.getLogger("pertdit")
COMMANDS = ("train", "evaluate", "embed", "data", "demo", "predict", "compare", "synth-release")
HYDRA_COMMANDS = ("train", "embed", "data")  # configured by Hydra overrides (pertdit/conf/train.yaml)
# For DDP, Lightning starts ranks 1..N-1 by re-running this command line without the command word (they get
# LOCAL_RANK): this variable tells them which Hydra task their overrides belong to.
DDP_TASK_ENV = "PERTDIT_DDP_TASK"


def _hydra_command(task: str, config_name: str, argv: list[str]) -> int:
    """Run a Hydra-configured task with `argv` as overrides (supports --multirun, --cfg job, ...)."""
    import hydra

    from pertdit.config import CONFIG_DIR, register_resolvers

    register_resolvers()

    @hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base="1.3")
    def _main(cfg):
        configure_console()  # after Hydra's logging set-up: one handler per line
        try:
            return _run_task(task, cfg)
        except PertDiTError as exc:  # one clear line, not a Hydra traceback
            print(f"pertdit {task}: error: {exc}", file=sys.stderr)
            sys.exit(1)

    os.environ[DDP_TASK_ENV] = task
    sys.argv = [sys.argv[0], *argv]  # argv[0] stays the runnable script: Lightning re-runs it for DDP ranks
    _main()
    return 0


def _run_task(task: str, cfg):
    """Dispatch a composed config to its task function."""
    if task == "train":
        from pertdit.train import train

        return train(cfg)
    if task == "embed":
        from pertdit.tasks import embed_task

        return embed_task(cfg)
    from pertdit.tasks import data_task

    return data_task(cfg)


def _evaluate(argv: list[str]) -> int:
    from pertdit.metrics import evaluate_h5ad, format_table, write_metrics_csv
    from pertdit.provenance import SUBSTITUTION_COLUMN

    parser = argparse.ArgumentParser(prog="pertdit evaluate", description="Score a PRED.h5ad with the 10 measures.")
    parser.add_argument("pred", type=Path, help="PRED.h5ad: X = predictions, layers truth and control")
    parser.add_argument("--out", type=Path, default=None, help="metrics CSV to write")
    parser.add_argument("--relu", choices=("auto", "on", "off"), default="auto",
                        help="ReLU on predictions before scoring (auto: as recorded in the file)")
    parser.add_argument("--control-reference", choices=("paired", "cell_mean"), default="paired")
    parser.add_argument("--calibration-out", type=Path, default=None,
                        help="calibration CSV to write when the file holds a predicted spread (default: beside "
                             "--out, 'metrics' in its name replaced by 'calibration'); docs/calibration.md")
    args = parser.parse_args(argv)
    relu = {"auto": None, "on": True, "off": False}[args.relu]
    table = evaluate_h5ad(args.pred, relu=relu, control_reference=args.control_reference)
    smoke = _is_smoke_prediction(args.pred)
    if smoke:
        table = table.assign(smoke_test=True)
    substitution = _prediction_substitution(args.pred)
    if substitution:
        table = table.assign(**{SUBSTITUTION_COLUMN: substitution})
        print(f"note: the drug representation of {args.pred} made a substitution: {substitution}")
    print(format_table(table))
    if smoke:
        print(f"note: {args.pred} holds the predictions of a smoke test (trainer.fast_dev_run): not a result")
    if args.out:
        path = write_metrics_csv(table, args.out)
        print(f"written: {path} ({len(table)} measures of {args.pred})")
    _evaluate_calibration(args.pred, args.calibration_out or _calibration_path(args.out))
    return 0


def _calibration_path(metrics_out: Path | None) -> Path | None:
    if metrics_out is None:
        return None
    name = metrics_out.name
    return metrics_out.with_name(name.replace("metrics", "calibration") if "metrics" in name
                                 else f"{metrics_out.stem}_calibration.csv")


def _evaluate_calibration(pred_path: Path, out: Path | None) -> None:
    """Print (and write to `out`) the calibration of the PRED.h5ad's spread layers, when it has them."""
    import anndata as ad
    import h5py

    from pertdit.metrics.calibration import (format_calibration, prediction_calibration, spread_layer_names,
                                             write_calibration_csv)

    with h5py.File(pred_path, "r") as file:
        has_spread = "layers" in file and all(n in file["layers"] for n in spread_layer_names() if n != "pit")
    if not has_spread:
        print(f"no predicted spread in {pred_path} (layers {', '.join(spread_layer_names())}): no calibration")
        return
    table = prediction_calibration(ad.read_h5ad(pred_path))
    print("calibration of the predicted spread (docs/calibration.md):\n" + format_calibration(table))
    if out:
        print(f"written: {write_calibration_csv(table, out)}")


def _is_smoke_prediction(path: Path) -> bool:
    """True when a PRED.h5ad says it came from `trainer.fast_dev_run`."""
    import h5py

    with h5py.File(path, "r") as file:
        flag = file.get("uns/pertdit/smoke_test")
        return bool(flag[()]) if flag is not None else False


def _prediction_substitution(path: Path) -> str | None:
    """The substitution note (`pertdit.provenance.substitution_note`) of the representation recorded in a
    PRED.h5ad's uns["pertdit"]["representation"], or None."""
    import h5py
    from anndata.io import read_elem

    from pertdit.provenance import substitution_note

    with h5py.File(path, "r") as file:
        record = file.get("uns/pertdit/representation")
        return substitution_note(read_elem(record)) if isinstance(record, h5py.Group) else None


def _resume(argv: list[str]) -> int:
    """`pertdit train --resume RUN_DIR [KEY=VALUE ...]`: continue a run with its own config."""
    from pertdit.resume import resume_config
    from pertdit.train import train

    index = argv.index("--resume")
    if index + 1 >= len(argv):
        raise PertDiTError("--resume needs the run folder: pertdit train --resume RUN_DIR [KEY=VALUE ...]")
    run_dir = Path(argv[index + 1])
    cfg = resume_config(run_dir, argv[:index] + argv[index + 2:])
    logs = sorted(run_dir.glob("*.log"))  # Hydra's log of the run: the resumed part is appended to it
    handler = logging.FileHandler(logs[0] if len(logs) == 1 else run_dir / "train.log", mode="a")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    train(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pertdit` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(DDP_TASK_ENV) and (
            not argv or argv[0] not in COMMANDS):  # a DDP rank Lightning started from `pertdit <task> ...`
        argv = [os.environ[DDP_TASK_ENV], *argv]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(f"usage: pertdit {{{','.join(COMMANDS)}}} [options | hydra overrides]\n"
              "  train     train and test a model:     pertdit train model=crossdit preset=cpu_quick\n"
              "            resume an interrupted run:  pertdit train --resume RUN_DIR\n"
              "  evaluate  score predictions:          pertdit evaluate PRED.h5ad --out metrics.csv\n"
              "  embed     precompute drug embeddings: pertdit embed perturbation=text [--download-only|--verify]\n"
              "  data      preprocess and summarise:   pertdit data data=plate\n"
              "  demo      baselines, a quick DiT and PRnet on the shipped collection (drug / cell line unseen)\n"
              "  compare   every model, same split and CPU budget, 3 seeds: "
              "pertdit compare [--models M ...] [--seeds S ...]\n"
              "  predict   one compound, dose, cell:   "
              "pertdit predict --run DIR --smiles S --dose D --cell-line C\n"
              "  synth-release  a synthetic GEO release (a test fixture): pertdit synth-release --profiles N --out D\n"
              "`pertdit COMMAND --help` describes each command.",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command in HYDRA_COMMANDS and wants_help(rest):
        print(command_help(command))
        return 0
    resume = command == "train" and "--resume" in rest
    if command not in HYDRA_COMMANDS or resume:  # Hydra sets up logging for its own tasks
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    configure_console()
    try:
        if resume:
            return _resume(rest)
        if command == "evaluate":
            return _evaluate(rest)
        if command == "demo":
            from pertdit.demo import run_demo

            return run_demo(rest)
        if command == "compare":
            from pertdit.compare.cli import compare_cli

            return compare_cli(rest)
        if command == "predict":
            from pertdit.predict import predict_cli

            return predict_cli(rest)
        if command == "synth-release":
            from pertdit.data.synthetic_release import synth_release_cli

            return synth_release_cli(rest)
        if command == "embed":  # flags of `pertdit embed`, as config keys
            flags = {"--download-only": "++embed.download_only=true", "--verify": "++embed.verify=true"}
            rest = [flags.get(arg, arg) for arg in rest]
        return _hydra_command(command, "train", rest)
    except PertDiTError as exc:
        print(f"pertdit {command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
