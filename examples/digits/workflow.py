"""Handwritten digits: load, split, scale, fit, evaluate — a QFlow workflow.

Run it with ``python workflow.py`` (again: everything comes from the cache), or change a
parameter with ``python workflow.py alpha=0.001`` (only the steps that use it re-run).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import qflow

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import SGDClassifier


@qflow.provider
def digits() -> pd.DataFrame:
    """scikit-learn's bundled 8x8 digits: 64 pixel columns and a `target` column."""
    from sklearn.datasets import load_digits

    return load_digits(as_frame=True).frame


@qflow.step
class Split:
    """Stratified train/test split."""

    test_size: float = 0.25
    seed: int = 0

    def apply(self, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        from sklearn.model_selection import train_test_split

        return train_test_split(
            table, test_size=self.test_size, random_state=self.seed, stratify=table["target"]
        )


def features(table: pd.DataFrame) -> np.ndarray:
    """The pixel columns of a digits table as a float array."""
    return table.drop(columns="target").to_numpy(dtype="float64")


@qflow.step
class Scale:
    """Standardise pixels with the training set's mean and deviation."""

    def apply(self, train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(features(train))
        return scaler.transform(features(train)), scaler.transform(features(test))


@qflow.step
class Fit:
    """A linear classifier trained by SGD, one epoch at a time."""

    alpha: float = 1e-4
    epochs: int = 20
    seed: int = 0

    def apply(
        self, x: np.ndarray, train: pd.DataFrame
    ) -> Generator[qflow.RuntimeInfo, None, SGDClassifier]:
        import numpy as np
        from sklearn.linear_model import SGDClassifier
        from sklearn.metrics import log_loss

        y = train["target"].to_numpy()
        model = SGDClassifier(loss="log_loss", alpha=self.alpha, random_state=self.seed)
        bar = qflow.ProgressBar(name="epoch", total=self.epochs)
        for epoch in range(self.epochs):
            model.partial_fit(x, y, classes=np.arange(10))
            loss = log_loss(y, model.predict_proba(x), labels=np.arange(10))
            yield qflow.Metric(name="loss", value=float(loss), step=epoch)
            yield bar.update(1, message=f"loss={loss:.3f}")
        return model


@qflow.step
class Evaluate:
    """Accuracy on the held-out set."""

    def apply(
        self, model: SGDClassifier, x: np.ndarray, test: pd.DataFrame
    ) -> Generator[qflow.RuntimeInfo, None, float]:
        accuracy = float((model.predict(x) == test["target"].to_numpy()).mean())
        yield qflow.Metric(name="accuracy", value=accuracy)
        return accuracy


@qflow.workflow
class Digits:
    """Train and evaluate a digits classifier; the result is the test accuracy."""

    alpha: float = 1e-4
    epochs: int = 20
    test_size: float = 0.25

    def run(self, table: pd.DataFrame = digits()) -> Generator[qflow.RuntimeInfo, None, float]:
        train, test = Split(test_size=self.test_size).apply(table)
        x_train, x_test = Scale().apply(train, test)
        fit = qflow.label_info(Fit(alpha=self.alpha, epochs=self.epochs), train_loss="loss")
        model = yield from fit.apply(x_train, train)
        evaluate = qflow.label_info(Evaluate(), accuracy="accuracy")
        accuracy = yield from evaluate.apply(model, x_test, test)
        return accuracy


if __name__ == "__main__":
    qflow.launch(Digits)
