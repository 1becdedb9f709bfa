"""`pertdit predict`: a tiny diffusion model trained for a few steps on the real plate predicts one compound,
dose and cell line; as a subprocess and in-process; seeded samples, spread, the control, the errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from pertdit.cli import main
from pertdit.demo import run_config
from pertdit.errors import DataError, RepresentationError
from pertdit.predict import gene_table, load_run, predict
from pertdit.train import train
from tests.helpers import TINY_BACKBONE, compose_train

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"  # not on the plate: an unseen compound


@pytest.fixture(scope="module")
def cache_env(data_dir, tmp_path_factory):
    """PERTDIT_CACHE in a temporary folder (and PERTDIT_DATA) for this module and its subprocesses."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PERTDIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("PERTDIT_DATA", str(data_dir))
        yield


@pytest.fixture(scope="module")
def run_dir(cache_env, tmp_path_factory, data_dir) -> Path:
    """A crossdit run (config.yaml, checkpoints/ with best and last) trained for 3 steps."""
    path = tmp_path_factory.mktemp("crossdit")
    overrides = ["model=crossdit", "logger=[]", *TINY_BACKBONE, "model.warmup_steps=2", "trainer.max_epochs=1",
                 "diffusion=ddim", "diffusion.sampling_steps=5", "trainer.limit_train_batches=3",
                 "trainer.limit_val_batches=1", "trainer.enable_model_summary=false",
                 "trainer.enable_progress_bar=false", "~callbacks.early_stopping", "~callbacks.lr_monitor",
                 "test=false"]  # predict needs the config and checkpoints, not test scores
    cfg = compose_train(overrides, path, Path(os.environ["PERTDIT_CACHE"]), data_dir)
    train(cfg)
    return path


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


def _plate_smiles(run) -> str:
    obs = run.datamodule.adata.obs
    return str(obs.loc[~obs["is_control"].to_numpy(bool), "smiles"].iloc[0])


def _vehicle_mean(run, cell: str = "A375") -> np.ndarray:
    adata = run.datamodule.adata
    rows = (adata.obs["cell_id"] == cell).to_numpy() & adata.obs["is_control"].to_numpy(bool)
    return np.asarray(adata.X[rows], dtype=np.float64).mean(axis=0)


def _pertdit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pertdit.cli", "predict", *args], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=300)


def test_the_command_writes_samples_and_a_gene_table(run, run_dir, tmp_path):
    out = tmp_path / "pred.h5ad"
    done = _pertdit("--run", str(run_dir), "--smiles", _plate_smiles(run), "--dose", "1.11",
                    "--cell-line", "A375", "--samples", "3", "--out", str(out), "--top", "5")
    assert done.returncode == 0, done.stderr
    assert "top 5 up-regulated genes" in done.stdout and "top 5 down-regulated genes" in done.stdout
    pred = ad.read_h5ad(out)
    table = pd.read_csv(out.with_suffix(".csv"))
    n_genes = run.datamodule.dims["n_genes"]
    assert pred.shape == (3, n_genes) and list(pred.var_names) == run.datamodule.genes
    assert list(table.columns) == ["gene", "control", "mean", "sd", "lnfc", "rank", "interval_50_lower",
                                   "interval_50_upper", "interval_90_lower", "interval_90_upper"]
    assert sorted(table["rank"]) == list(range(1, n_genes + 1))
    table = table.set_index("gene").loc[pred.var_names]
    np.testing.assert_allclose(table["mean"], pred.X.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(table["sd"], pred.X.std(axis=0, ddof=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(table["control"], _vehicle_mean(run), rtol=1e-6)
    np.testing.assert_allclose(table["lnfc"], table["mean"] - table["control"], atol=1e-9)
    assert table["lnfc"].idxmax() == table["rank"].idxmin()
    # printed top up gene = rank 1 of the table
    top_line = done.stdout.split("top 5 up-regulated genes")[1].splitlines()[1]
    assert top_line.split()[0] == table["rank"].idxmin()
    assert "control: the mean of the 26 vehicle controls of A375 in the training data" in done.stdout


def test_the_command_draws_the_top_genes_with_their_spread(run, run_dir, tmp_path, capsys):
    """In-process (`pertdit.cli.main`, what the console script calls); the test above runs the subprocess."""
    from matplotlib.image import imread

    out = tmp_path / "pred.h5ad"
    assert main(["predict", "--run", str(run_dir), "--smiles", ASPIRIN, "--dose", "10", "--cell-line", "A375",
                 "--samples", "4", "--out", str(out), "--top", "6"]) == 0
    png = out.with_suffix(".png")
    assert f"{png} (top 6 up/down genes, samples' spread)" in capsys.readouterr().out
    height, width, _ = imread(png).shape
    assert width > height > 200


def test_a_prediction_records_its_provenance_and_its_control(run):
    meta = predict(run, ASPIRIN, 1.0, "A375", n_samples=2).uns["pertdit"]
    assert meta["model"] == "DiffusionModule" and meta["checkpoint"] == str(run.checkpoint)
    assert meta["control_source"] == "training_controls" and len(meta["config_hash"]) == 16
    assert {"split", "training_seed", "pertdit_version", "date", "representation"} <= set(meta)


def _basal_raw(data_dir: Path, cell_line: str) -> pd.Series:
    """The basal profile of a cell line, read with pandas alone, indexed by Entrez id."""
    table = pd.read_csv(data_dir / "l1000_basal_165cells_level3_n165x978.gct", sep="\t", skiprows=2)
    table = table[pd.to_numeric(table["pr_gene_id"], errors="coerce").notna()]  # rows below the column fields
    return pd.Series(table[cell_line].astype(float).to_numpy(),
                     index=table["pr_gene_id"].astype(int).to_numpy())


def test_an_unseen_cell_line_takes_its_basal_profile_through_the_training_transform(run, data_dir):
    """MCF7 is not on the A375 plate: its basal profile, clipped, scaled to the training data's median total
    and log1p-transformed (computed here with numpy from the raw plate), is the control."""
    adata = run.datamodule.adata
    assert "MCF7" not in set(adata.obs["cell_id"])
    pred = predict(run, ASPIRIN, 10.0, "MCF7", n_samples=2, seed=0)
    assert pred.uns["pertdit"]["control_source"] == "basal"
    assert "basal profile of MCF7" in pred.uns["pertdit"]["control"]
    plate = pd.read_csv(data_dir / "l1000_LJP005_A375_24H_level3_n377x978.gct", sep="\t", skiprows=2,
                        index_col=0)
    plate = plate[pd.to_numeric(plate["pr_gene_id"], errors="coerce").notna()]  # gene rows, not column fields
    raw_plate = plate[adata.obs_names].astype(float).to_numpy()
    target = np.median(np.clip(raw_plate, 0, 1e3).sum(axis=0))  # the training profiles' median total
    basal = _basal_raw(data_dir, "MCF7").loc[adata.var["entrez_id"].astype(int).to_numpy()].to_numpy()
    expected = np.log1p(np.clip(basal, 0, 1e3) * target / np.clip(basal, 0, 1e3).sum())
    np.testing.assert_allclose(pred.var["control"], expected, rtol=1e-5)
    # the same route puts A375's basal profile on the scale of the plate's A375 vehicle controls
    a375 = _basal_raw(data_dir, "A375").loc[adata.var["entrez_id"].astype(int).to_numpy()].to_numpy()
    a375 = np.log1p(np.clip(a375, 0, 1e3) * target / np.clip(a375, 0, 1e3).sum())
    assert np.corrcoef(a375, _vehicle_mean(run))[0, 1] > 0.9


def test_a_raw_control_file_goes_through_the_dataset_transform(run, tmp_path, data_dir):
    adata = run.datamodule.adata
    raw = _basal_raw(data_dir, "PC3").loc[adata.var["entrez_id"].astype(int).to_numpy()].to_numpy()
    path = tmp_path / "pc3_raw.csv"
    pd.DataFrame({"gene": run.datamodule.genes, "value": raw}).to_csv(path, index=False)
    from_file = predict(run, ASPIRIN, 1.0, "PC3", control_file=path, control_scale="raw", n_samples=1)
    from_basal = predict(run, ASPIRIN, 1.0, "PC3", n_samples=1)
    np.testing.assert_allclose(from_file.var["control"], from_basal.var["control"], rtol=1e-6)
    assert from_file.uns["pertdit"]["control_source"] == "user"


def test_a_model_with_cell_line_embeddings_refuses_an_unseen_cell_line(run, monkeypatch):
    monkeypatch.setattr(run.model, "uses_cell_identity", True)
    with pytest.raises(DataError, match="has none for 'MCF7'"):
        predict(run, ASPIRIN, 1.0, "MCF7", n_samples=1)


def test_samples_are_reproducible_under_a_seed(run):
    first = predict(run, ASPIRIN, 10.0, "A375", n_samples=4, seed=7)
    again = predict(run, ASPIRIN, 10.0, "A375", n_samples=4, seed=7)
    other = predict(run, ASPIRIN, 10.0, "A375", n_samples=4, seed=8)
    np.testing.assert_array_equal(first.X, again.X)
    assert not np.array_equal(first.X, other.X)


def test_several_samples_have_a_spread_and_one_has_none(run):
    many = predict(run, ASPIRIN, 10.0, "A375", n_samples=5, seed=0)
    one = predict(run, ASPIRIN, 10.0, "A375", n_samples=1, seed=0)
    assert many.n_obs == 5 and (many.var["sd"] > 0).mean() > 0.5
    # predictions go through ReLU (prnet transform): a gene clipped to 0 in every sample has no spread
    np.testing.assert_array_equal(many.var["sd"] > 0, (many.X > 0).any(axis=0))
    assert one.n_obs == 1 and (one.var["sd"] == 0).all()
    assert many.uns["pertdit"]["stochastic"] and many.uns["pertdit"]["n_samples"] == 5


def test_the_gene_table_gives_the_central_intervals_of_the_samples(run):
    """50 % / 90 % intervals of a Gaussian fit to the samples (Student-t predictive, docs/calibration.md)."""
    from scipy import stats

    many = predict(run, ASPIRIN, 10.0, "A375", n_samples=6, seed=0)
    table = gene_table(many).set_index("gene")
    X = many.X.astype(np.float64)
    half = stats.t.ppf(0.95, 5) * X.std(0, ddof=1) * np.sqrt(1 + 1 / 6)
    genes = many.var_names.astype(str)
    np.testing.assert_allclose(table.loc[genes, "interval_90_upper"], X.mean(0) + half, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(table.loc[genes, "interval_90_lower"], X.mean(0) - half, rtol=1e-4, atol=1e-5)
    assert (table["interval_50_upper"] <= table["interval_90_upper"]).all()
    assert "interval_90_lower" not in gene_table(predict(run, ASPIRIN, 10.0, "A375", n_samples=1))


def test_a_control_file_replaces_the_vehicle_mean(run, tmp_path):
    control = _vehicle_mean(run)
    long = tmp_path / "control.csv"
    pd.DataFrame({"gene": run.datamodule.genes[::-1], "value": control[::-1]}).to_csv(long, index=False)
    from_file = predict(run, ASPIRIN, 3.33, "A375", control_file=long, n_samples=2, seed=1)
    default = predict(run, ASPIRIN, 3.33, "A375", n_samples=2, seed=1)
    np.testing.assert_allclose(from_file.var["control"], control)
    np.testing.assert_allclose(from_file.X, default.X, rtol=1e-5, atol=1e-4)
    wide = tmp_path / "wide.csv"
    pd.DataFrame([control[5:]], columns=run.datamodule.genes[5:]).to_csv(wide, index=False)
    with pytest.raises(DataError, match="lacks 5 of the model's") as err:
        predict(run, ASPIRIN, 3.33, "A375", control_file=wide)
    assert all(g in str(err.value) for g in run.datamodule.genes[:5])


def test_errors_name_the_cell_line_smiles_and_dose(run, run_dir, capsys):
    base = ["predict", "--run", str(run_dir), "--smiles", ASPIRIN]
    assert main([*base, "--dose", "1", "--cell-line", "NOT_A_CELL"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown cell line 'NOT_A_CELL'" in err[0] and "A375" in err[0]
    assert "l1000_basal.h5ad" in err[0] and "--control FILE" in err[0]
    assert main([*base, "--dose", "0", "--cell-line", "A375"]) == 1
    assert "dose must be a number > 0" in capsys.readouterr().err
    with pytest.raises(RepresentationError, match="invalid SMILES 'C1CC\\('"):
        predict(run, "C1CC(", 1.0, "A375")
    done = _pertdit("--run", str(run_dir), "--smiles", "not-a-smiles", "--dose", "1", "--cell-line", "A375")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[-1] == "pertdit predict: error: invalid SMILES 'not-a-smiles': RDKit cannot parse it"


def test_a_deterministic_baseline_gives_one_prediction_with_no_spread(cache_env, tmp_path, capsys):
    run_config(["model=mean_shift", "logger=[]", "callbacks=none", "trainer.enable_progress_bar=false"],
               tmp_path / "mean_shift")
    out = tmp_path / "ms.h5ad"
    assert main(["predict", "--run", str(tmp_path / "mean_shift"), "--smiles", ASPIRIN, "--dose", "10",
                 "--cell-line", "a375", "--samples", "5", "--out", str(out)]) == 0
    assert "deterministic: 1 prediction, sd 0" in capsys.readouterr().out
    pred = ad.read_h5ad(out)
    assert pred.n_obs == 1 and (gene_table(pred)["sd"] == 0).all()
    assert pred.obs["cell_id"].iloc[0] == "A375"


def test_a_run_loads_its_best_checkpoint_or_an_explicit_one(run, run_dir):
    assert run.checkpoint.parent == run_dir / "checkpoints" and run.checkpoint.name != "last.ckpt"
    explicit = load_run(checkpoint=run_dir / "checkpoints" / "last.ckpt", config=run_dir / "config.yaml")
    assert explicit.checkpoint.name == "last.ckpt"
    assert predict(explicit, ASPIRIN, 1.0, "A375", n_samples=2).shape == (2, run.datamodule.dims["n_genes"])
    with pytest.raises(DataError, match="both --checkpoint FILE and --config FILE"):
        load_run(checkpoint=run_dir / "checkpoints" / "last.ckpt")


def test_a_model_conditioned_on_time_needs_the_time_and_uses_it(cache_env, tmp_path, capsys):
    run_dir = tmp_path / "prnet_time"
    run_config(["model=prnet", "data=bundle", "data.sources=[LJP001-002_SKBR3]", "split=random_fold",
                "perturbation.condition_on_time=true", "model.predict_mode=mean", "logger=[]",
                "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                "~callbacks.early_stopping", "~callbacks.lr_monitor"], run_dir)
    run = load_run(run_dir)
    with pytest.raises(DataError, match=r"give --time HOURS > 0 \(its training data has 6, 24 h\)"):
        predict(run, ASPIRIN, 2.0, "SKBR3")
    early, late = (predict(run, ASPIRIN, 2.0, "SKBR3", time=hours) for hours in (6.0, 24.0))
    assert early.obs["time"].iloc[0] == 6.0 and late.obs["time"].iloc[0] == 24.0
    assert not np.allclose(early.X, late.X)
    out = tmp_path / "late.h5ad"
    assert main(["predict", "--run", str(run_dir), "--smiles", ASPIRIN, "--dose", "2", "--cell-line", "SKBR3",
                 "--time", "24", "--out", str(out)]) == 0
    np.testing.assert_allclose(ad.read_h5ad(out).X, late.X, rtol=1e-6)
