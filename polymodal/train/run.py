"""From a manifest to a saved model and its report: what ``polymodal train fusion / evaluate / predict`` do."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from polymodal.config import Settings
from polymodal.errors import InputNotFound, UsageError
from polymodal.train import report as reports
from polymodal.train.features import FeatureExtractor, FeatureTable
from polymodal.train.fusion import Experiment, FusionConfig, FusionModel, evaluate, run_experiment
from polymodal.train.manifest import MODALITIES, Manifest, Problem, Row, read_manifest


def extractor_for(settings: Settings | None = None, store: Any = None) -> FeatureExtractor:
    """A feature extractor over the configured models; ``store`` (an open store, a store directory or a PostgreSQL
    URL) caches."""
    from polymodal.analysis import Analyzer

    settings = settings or Settings.from_env()
    if store is not None and not hasattr(store, "feature"):
        from polymodal.config import is_url
        from polymodal.store.base import open_store

        store = open_store(store if is_url(store) else Path(store).expanduser(), cache=settings.cache)
    return FeatureExtractor(Analyzer(settings), store)


def features(
    extractor: FeatureExtractor, rows: list[Row], verbose: bool, modalities: tuple[str, ...] | list[str] = MODALITIES
) -> tuple[FeatureTable, list[Problem]]:
    from tqdm import tqdm

    with tqdm(total=len(rows), desc="features", unit="item", file=sys.stderr, disable=not verbose,
              dynamic_ncols=True, leave=False) as bar:  # fmt: skip
        return extractor.table(rows, lambda done, total: bar.update(done - bar.n), modalities)


def train_fusion(
    manifest: str | Path,
    out: str | Path,
    fusion: str = "early",
    *,
    folds: int = 0,
    test_fraction: float = 0.2,
    seed: int = 0,
    config: FusionConfig | None = None,
    settings: Settings | None = None,
    store: Any = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train a fusion classifier on a labelled manifest, save it to ``out`` with its report; returns the report."""
    settings = settings or Settings.from_env()
    extractor = extractor_for(settings, store)
    parsed = read_manifest(manifest)
    table, problems = features(extractor, parsed.rows, verbose)
    problems = sorted(parsed.problems + problems, key=lambda p: p.line)
    _check_trainable(table)
    config = replace(config or FusionConfig(), fusion=fusion, seed=seed)
    experiment = run_experiment(table, config, folds, test_fraction, verbose=verbose)
    model = experiment.model
    assert model is not None
    model.extractors = extractor.ids()
    out = Path(out).expanduser()
    report = _report(f"Fusion classifier ({fusion})", parsed, table, problems, experiment)
    report["files"] = _plots(out, experiment, "fusion")
    report["files"].update(reports.write(out, "report", report, reports.fusion_markdown(report)))
    model.save(out, extra={"summary": {k: report["results"]["fusion"][k] for k in ("n", "accuracy", "macro_f1")}})
    report["model"] = str(out)
    return report


def evaluate_fusion(
    model_dir: str | Path,
    manifest: str | Path,
    out: str | Path | None = None,
    *,
    settings: Settings | None = None,
    store: Any = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Score a saved model on a labelled manifest: metrics, confusion matrix, per-modality ablation."""
    extractor = extractor_for(settings, store)
    model = FusionModel.load(model_dir, extractor)
    parsed = read_manifest(manifest)
    known = set(model.classes)
    rows = [r for r in parsed.rows if r.label in known]
    unknown = [Problem(r.line, f"label {r.label!r} is not one the model knows") for r in parsed.rows
               if r.label not in known]  # fmt: skip
    table, problems = features(extractor, rows, verbose, model.modalities)
    problems = sorted(parsed.problems + unknown + problems, key=lambda p: p.line)
    if not len(table):
        raise UsageError(f"no usable row in {manifest}" + (f" (first problem: {problems[0]})" if problems else ""))
    results = evaluate(model, table)
    experiment = Experiment(model.classes, model.config.fusion, results, {}, model,
                            {"rows": len(table), "seed": model.config.seed})  # fmt: skip
    report = _report(f"Evaluation of {Path(model_dir).name} on {Path(manifest).name}", parsed, table, problems,
                     experiment)  # fmt: skip
    out = Path(out).expanduser() if out else Path(model_dir).expanduser() / f"eval-{Path(manifest).stem}"
    report["files"] = _plots(out, experiment, "fusion", curves=False)
    report["files"].update(reports.write(out, "evaluation", report, reports.fusion_markdown(report)))
    return report


def predict(
    model_dir: str | Path,
    text: str | None = None,
    image: str | Path | None = None,
    audio: str | Path | None = None,
    *,
    settings: Settings | None = None,
    store: Any = None,
) -> dict[str, Any]:
    """The label of one item (any modalities), its probabilities, and which modality drove the decision."""
    extractor = extractor_for(settings, store)
    model = FusionModel.load(model_dir, extractor)
    row = Row(0, None, text or None, _existing(image, "image"), _existing(audio, "audio"))
    if not row.modalities:
        raise UsageError("give at least one of --text, --image, --audio")
    table, problems = extractor.table([row], modalities=model.modalities)
    if problems:
        raise UsageError(problems[0].reason)
    result = model.explain(table)[0]
    ignored = [m for m in row.modalities if m not in model.modalities]
    if ignored:
        result["ignored"] = {m: "the model was not trained on this modality" for m in ignored}
    return result


def _existing(value: str | Path | None, modality: str) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputNotFound(f"{modality} file not found: {value}")
    return path


def _check_trainable(table: FeatureTable) -> None:
    counts = Counter(table.labels)
    if len(counts) < 2:
        raise UsageError(f"need at least two labels to train a classifier; found {dict(counts) or 'no usable row'}")
    if len(table) < 2 * len(counts):
        raise UsageError(f"{len(table)} usable rows are too few for {len(counts)} labels")


def _report(title: str, manifest: Manifest, table: FeatureTable, problems: list[Problem],
            experiment: Experiment) -> dict[str, Any]:  # fmt: skip
    counts = Counter(table.labels)
    return {
        "title": title,
        "manifest": str(manifest.path),
        "rows_read": len(manifest.rows) + len(manifest.problems),
        "rows_used": len(table),
        "problems": [p.to_dict() for p in problems],
        "class_counts": {c: counts[c] for c in sorted(counts)},
        "modality_counts": {m: int(table.present(m).sum()) for m in MODALITIES},
        **experiment.to_dict(),
        "training": {name: h.to_dict() for name, h in experiment.histories.items()},
    }


def _plots(out: Path, experiment: Experiment, name: str, curves: bool = True) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    if name in experiment.results:
        title = f"{experiment.fusion} fusion"
        files["confusion_png"] = str(reports.plot_confusion(experiment.results[name], out / "confusion.png", title))
    if curves and experiment.histories:
        data = {k: h.to_dict() for k, h in experiment.histories.items()}
        files["curves_png"] = str(reports.plot_curves(data, out / "curves.png", f"{experiment.fusion} fusion"))
    return files
