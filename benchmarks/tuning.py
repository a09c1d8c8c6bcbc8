"""20 tuning trials of a workflow with an expensive preprocessing step (0.5 s) and a cheap fit:
QFlow's tuner (trials share the cached preprocessing) vs a plain Optuna loop that runs the
whole pipeline in every trial. Run: `make bench` or `python benchmarks/tuning.py`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import optuna

import qflow
from qflow.config.paths import Paths
from qflow.config.schema import TuneSettings
from qflow.launchers.local import LocalLauncher
from qflow.tuners.optuna import OptunaTuner, TuneRequest

TRIALS = 20


def prepare(seed: int) -> list[float]:
    time.sleep(0.5)
    return [((i * 37 + seed) % 100) / 100 for i in range(1000)]


def fit(data: list[float], alpha: float) -> float:
    return -((alpha - 0.3) ** 2) + sum(data) / len(data) * 1e-3


@qflow.step
class Prepare:
    def apply(self, seed: int) -> list[float]:
        return prepare(seed)


@qflow.step
class Fit:
    alpha: float = 0.5

    def apply(self, data: list[float]) -> float:
        return fit(data, self.alpha)


@qflow.workflow
class Pipeline:
    alpha: float = 0.5

    def run(self, seed: int = 0) -> float:
        return Fit(alpha=self.alpha).apply(Prepare().apply(seed))


def plain_optuna() -> float:
    def objective(trial: optuna.Trial) -> float:
        return fit(prepare(0), trial.suggest_float("alpha", 0.0, 1.0))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=TRIALS)
    return study.best_value


def with_qflow(root: Path) -> float:
    settings = TuneSettings(n_trials=TRIALS, pruner="none",
                            params={"alpha": {"type": "float", "low": 0.0, "high": 1.0}})
    request = TuneRequest(name="pipeline", study="bench/pipeline", cls=Pipeline,
                          parameters={}, inputs={}, settings=settings,
                          launcher=LocalLauncher(Paths(root), tracker="file", console=False))
    return OptunaTuner(request, console=False).tune().best_value


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix=".bench-", dir=Path(__file__).parent))
    try:
        start = time.perf_counter()
        plain_optuna()
        plain = time.perf_counter() - start
        start = time.perf_counter()
        with_qflow(root)
        ours = time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{TRIALS} trials, preprocessing 0.5 s, fit instant")
    print(f"  plain Optuna loop (whole pipeline per trial)  {plain:6.2f} s")
    print(f"  qflow tune (preprocessing cached)             {ours:6.2f} s   "
          f"({plain / ours:.1f}x faster)")


if __name__ == "__main__":
    main()
