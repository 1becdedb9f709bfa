"""A comparison benchmark (`pertdit/conf/compare/<name>.yaml`): the protocol every run shares, the budget, the
seeds and the models, each a label and the `pertdit train` overrides that make it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pertdit.config import CONFIG_DIR
from pertdit.errors import PertDiTError

BENCHMARK_DIR = CONFIG_DIR / "compare"


class CompareError(PertDiTError):
    """A comparison that cannot run as asked (unknown model, a finished run made with another config, ...)."""


@dataclass(frozen=True)
class Entry:
    """One model of a comparison: `name` (the key), `label` (what tables print), its `pertdit train`
    overrides, and whether it learns (control and mean_shift only compute statistics)."""

    name: str
    label: str
    overrides: tuple[str, ...]
    learned: bool = True


@dataclass
class Benchmark:
    """The runs of `pertdit compare`: `protocol` overrides shared by every run, a CPU budget per training,
    seeds, the models, the `reference` baseline, and the `target` (DiTs against PRnet, issue 13)."""

    name: str
    protocol: list[str]
    models: dict[str, Entry]
    cpu_minutes: float = 2.0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    reference: str = "mean_shift"
    target: dict[str, list[str]] = field(default_factory=dict)

    def entries(self, names: list[str] | None = None) -> list[Entry]:
        """The entries `names` (all, in the file's order, when None); an unknown name is an error."""
        if not names:
            return list(self.models.values())
        unknown = [n for n in names if n not in self.models]
        if unknown:
            raise CompareError(f"model(s) {unknown} are not in benchmark {self.name!r}; it has "
                               f"{list(self.models)} (pertdit/conf/compare/{self.name}.yaml)")
        return [self.models[n] for n in names]

    def run_overrides(self, entry: Entry, seed: int, cpu_minutes: float | None,
                      extra: list[str] = ()) -> list[str]:
        """The `pertdit train` overrides of one run: the protocol, the model, the seed, the budget, `extra`."""
        budget = [] if cpu_minutes is None else [f"callbacks.compute_budget.cpu_minutes={cpu_minutes:g}"]
        return [*self.protocol, *entry.overrides, f"seed={seed}", *budget, "trainer.enable_progress_bar=false",
                *extra]


def load_benchmark(name_or_path: str | Path) -> Benchmark:
    """A benchmark by name (`pertdit/conf/compare/<name>.yaml`) or from a YAML file of that layout."""
    path = Path(name_or_path)
    if not path.suffix:
        path = BENCHMARK_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in BENCHMARK_DIR.glob("*.yaml"))
        raise CompareError(f"benchmark {name_or_path!r} not found (looked for {path}); known: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    missing = [key for key in ("protocol", "models") if not raw.get(key)]
    if missing:
        raise CompareError(f"{path}: {missing} missing; a benchmark needs `protocol` (overrides) and `models`")
    models = {}
    for name, spec in raw["models"].items():
        if not spec or not spec.get("overrides"):
            raise CompareError(f"{path}: model {name!r} needs `overrides` (e.g. [model={name}])")
        models[name] = Entry(name=name, label=str(spec.get("label", name)),
                             overrides=tuple(str(o) for o in spec["overrides"]),
                             learned=bool(spec.get("learned", True)))
    bench = Benchmark(name=path.stem, protocol=[str(o) for o in raw["protocol"]], models=models,
                      cpu_minutes=float(raw.get("cpu_minutes", 2.0)),
                      seeds=[int(s) for s in raw.get("seeds", [0, 1, 2])],
                      reference=str(raw.get("reference", "mean_shift")),
                      target={k: [str(v) for v in vs] for k, vs in (raw.get("target") or {}).items()})
    for key in ("dits", "against"):
        unknown = [n for n in bench.target.get(key, []) if n not in models]
        if unknown:
            raise CompareError(f"{path}: target.{key} names {unknown}, which are not among its models")
    return bench
