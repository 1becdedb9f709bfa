"""`pertdit data` prints how many profiles each source had, kept, and dropped for each reason."""

from __future__ import annotations

from pertdit.tasks import data_task
from tests.helpers import compose_train


def test_data_task_accounts_for_every_profile_of_every_source(tmp_path, capsys):
    cfg = compose_train(["data=bundle"], tmp_path / "run", tmp_path / "cache", tmp_path / "no_shared_data")
    data_task(cfg)
    out = capsys.readouterr().out
    assert "2107 profiles x 978 genes (352 controls" in out
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("source ") and "read" in line)) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("total")) + 1
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines[start:end]}
    assert set(rows) == {"LJP005_A375_24H", "LJP005_MCF7_24H", "LJP006_PC3_24H", "CPC006_A375_6H",
                         "CPC006_HT115_6H", "LJP001-002_SKBR3", "transigen_LINCS2020_pairs", "total"}
    for name, (read, kept, kept_treated, kept_controls, *dropped) in rows.items():
        assert read == kept + sum(dropped) and kept == kept_treated + kept_controls, name
    assert rows["total"][0] == 2229
    assert "dropped pert types: {'trt_poscon': 23}" in out
    assert "CPC006_A375_6H_X1:M24 (BRD-K88510285, dose 0)" in out
    assert (tmp_path / "run" / "dataset.h5ad").is_file()
