"""Reports of training runs: JSON (everything), Markdown (for people), PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polymodal.train.metrics import Metrics


def write(folder: Path, stem: str, report: dict[str, Any], markdown: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (folder / f"{stem}.md").write_text(markdown)
    return {"json": str(folder / f"{stem}.json"), "markdown": str(folder / f"{stem}.md")}


# --- plots -------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(metrics: Metrics, path: Path, title: str = "Confusion matrix") -> Path:
    import numpy as np

    plt = _pyplot()
    matrix = np.asarray(metrics.confusion, dtype=float)
    used = [i for i in range(len(metrics.classes)) if matrix[i].sum() or matrix[:, i].sum()]
    matrix = matrix[np.ix_(used, used)]
    names = [metrics.classes[i] for i in used]
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {metrics.accuracy:.1%}, macro-F1 {metrics.macro_f1:.3f}, n={metrics.n}")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(curves: Mapping[str, Mapping[str, list[float]]], path: Path, title: str = "Learning curves") -> Path:
    """``curves``: name -> {"train_loss": [...], "val_loss": [...], "val_accuracy": [...]} (any may be empty)."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for index, (name, curve) in enumerate(curves.items()):
        color = f"C{index % 10}"
        epochs = range(1, len(curve.get("train_loss", [])) + 1)
        if curve.get("train_loss"):
            loss_ax.plot(epochs, curve["train_loss"], color=color, linestyle="--", label=f"{name} train")
        if curve.get("val_loss"):
            loss_ax.plot(range(1, len(curve["val_loss"]) + 1), curve["val_loss"], color=color, label=f"{name} val")
        if curve.get("val_accuracy"):
            acc_ax.plot(range(1, len(curve["val_accuracy"]) + 1), curve["val_accuracy"], color=color, label=name)
        if curve.get("best_epoch"):
            loss_ax.axvline(curve["best_epoch"], color=color, alpha=0.25)
    loss_ax.set(xlabel="epoch" if "steps" not in title else "step", ylabel="loss", title=f"{title}: loss")
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", title=f"{title}: validation accuracy", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        if ax.lines:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- markdown ------------------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def results_table(results: Mapping[str, dict[str, Any]]) -> str:
    lines = ["| model / rows | n | accuracy % | macro-F1 % | folds: accuracy ± sd |", "|---|---|---|---|---|"]
    for name, r in results.items():
        spread = f"{_pct(r['accuracy_mean'])} ± {_pct(r['accuracy_std'])}" if "accuracy_mean" in r else ""
        lines.append(f"| {name} | {r['n']} | {_pct(r['accuracy'])} | {_pct(r['macro_f1'])} | {spread} |")
    return "\n".join(lines)


def per_class_table(per_class: Mapping[str, dict[str, float]]) -> str:
    lines = ["| class | n | precision % | recall % | F1 % |", "|---|---|---|---|---|"]
    for name, r in per_class.items():
        lines.append(f"| {name} | {r['n']} | {_pct(r['precision'])} | {_pct(r['recall'])} | {_pct(r['f1'])} |")
    return "\n".join(lines)


def problems_section(problems: list[dict[str, Any]], limit: int = 50) -> str:
    if not problems:
        return "No bad rows.\n"
    lines = [f"{len(problems)} rows skipped:", ""]
    lines += [f"- line {p['line']}: {p['reason']}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"- … {len(problems) - limit} more (see the JSON report)")
    return "\n".join(lines) + "\n"


def fusion_markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    fusion = results.get("fusion", {})
    how = (f"{report['split']['folds']}-fold cross-validation (pooled over folds)" if report["split"].get("folds")
           else f"a held-out {report['split'].get('test_fraction', 0):.0%} split, stratified by label")  # fmt: skip
    parts = [
        f"# {report['title']}",
        "",
        f"Manifest `{report.get('manifest', '')}`: {report['rows_used']} rows used; classes (n): "
        + ", ".join(f"{c} ({n})" for c, n in report["class_counts"].items()) + ".",
        "Rows with each modality: " + ", ".join(f"{m} {n}" for m, n in report["modality_counts"].items()) + ".",
        f"Scored on {how}; seed {report['split'].get('seed')}.",
        "",
        "## Results",
        "",
        "`X only` is a classifier trained on that modality alone, scored on the rows that have it; compare it with"
        " `fusion, rows with X` (same rows, every modality they have). `fusion without X` hides X at test time.",
        "",
        results_table(results),
        "",
        "## Per class (fusion)",
        "",
        per_class_table(fusion.get("per_class", {})),
        "",
        "## Bad rows",
        "",
        problems_section(report.get("problems", [])),
    ]
    if report.get("files"):
        parts += ["## Files", ""] + [f"- {k}: `{v}`" for k, v in report["files"].items()] + [""]
    return "\n".join(parts)


def align_markdown(report: dict[str, Any]) -> str:
    rows = ["| method | R@1 % | R@5 % | R@10 % |", "|---|---|---|---|"]
    for name, r in report["recall"].items():
        rows.append(f"| {name} | {r['R@1']:.1f} | {r['R@5']:.1f} | {r['R@10']:.1f} |")
    held = report["holdout"]
    parts = [
        f"# {report['title']}",
        "",
        f"Manifest `{report.get('manifest', '')}`: {report['pairs']} pairs, {report['groups']} distinct texts. "
        f"Held out: {held['queries']} texts ({held['items']} {report['modality']} items), split by text so that "
        "no held-out text was seen in training.",
        f"Text -> {report['modality']} retrieval; a hit is any item with the query's exact text in the top K.",
        "",
        "\n".join(rows),
        "",
        f"Saved aligner `{report.get('aligner_id', '')}` (blend {report.get('blend', 0.5)} with the label bridge), "
        + ("refit on all pairs." if report.get("refit") else "trained on the training split only."),
        "",
        "## Bad rows",
        "",
        problems_section(report.get("problems", [])),
    ]
    return "\n".join(parts)
