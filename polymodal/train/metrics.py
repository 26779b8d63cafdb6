"""Classification metrics (scikit-learn): accuracy, macro-F1, per-class precision / recall / F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Metrics:
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]  # rows: true class, columns: predicted class (in ``classes`` order)
    classes: list[str]
    folds: list[dict[str, float]] = field(default_factory=list)  # per-fold accuracy / macro-F1, if any

    def to_dict(self, confusion: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4)}
        if self.folds:
            out["folds"] = self.folds
            for key in ("accuracy", "macro_f1"):
                values = [f[key] for f in self.folds]
                out[f"{key}_mean"] = round(float(np.mean(values)), 4)
                out[f"{key}_std"] = round(float(np.std(values)), 4)
        out["per_class"] = self.per_class
        if confusion:
            out["confusion"] = self.confusion
        return out


def compute(y_true: Sequence[int], y_pred: Sequence[int], classes: list[str]) -> Metrics:
    """Metrics over class indices; macro-F1 averages the classes that occur in truth or prediction."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    truth, pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    every = list(range(len(classes)))
    matrix = confusion_matrix(truth, pred, labels=every) if len(truth) else np.zeros((len(every),) * 2, np.int64)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=every, zero_division=0.0
    ) if len(truth) else (np.zeros(len(every)),) * 4  # fmt: skip
    per_class = {
        c: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4), "n": int(support[i])}
        for i, c in enumerate(classes) if support[i] > 0
    }  # fmt: skip
    seen = sorted(set(truth.tolist()) | set(pred.tolist()))
    accuracy = float(np.trace(matrix) / max(1, len(truth)))
    macro = float(f1_score(truth, pred, labels=seen, average="macro", zero_division=0.0)) if seen else 0.0
    return Metrics(len(truth), accuracy, macro, per_class, matrix.tolist(), list(classes))


def pooled(parts: list[tuple[np.ndarray, np.ndarray]], classes: list[str]) -> Metrics:
    """Metrics over the predictions of several folds together, with each fold's own figures kept."""
    truth = np.concatenate([t for t, _ in parts]) if parts else np.zeros(0, np.int64)
    pred = np.concatenate([p for _, p in parts]) if parts else np.zeros(0, np.int64)
    metrics = compute(truth, pred, classes)
    if len(parts) > 1:
        metrics.folds = [
            {"n": len(t), "accuracy": round(m.accuracy, 4), "macro_f1": round(m.macro_f1, 4)}
            for t, p in parts
            for m in [compute(t, p, classes)]
        ]
    return metrics
