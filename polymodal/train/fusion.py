"""Fusion classifiers over text + image + audio: training, evaluation, saving, prediction, explanation.

Heads are trained in PyTorch on the CPU (:mod:`polymodal.train.nets`) on frozen features
(:mod:`polymodal.train.features`): class-weighted loss, modality dropout (so a row missing a modality at
prediction time is a case seen in training), early stopping on a stratified validation split, a fixed seed.
A saved model is ``model.safetensors`` + ``config.json`` (no pickle); loading checks that the feature
extractors (model ids) are the ones in use.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.train.features import FeatureExtractor, FeatureTable
from polymodal.train.manifest import MODALITIES
from polymodal.train.metrics import Metrics, pooled

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
FORMAT = "polymodal-fusion"


class ModelFileError(ValueError):
    """A saved model folder is missing or malformed."""


@dataclass
class FusionConfig:
    fusion: str = "early"
    hidden: int = 128
    dropout: float = 0.3
    modality_dropout: float = 0.3  # chance of hiding each present modality of a training row (one always stays)
    lr: float = 1e-3
    weight_decay: float = 1e-2
    max_epochs: int = 200
    patience: int = 25  # epochs without a better validation loss before stopping
    batch_size: int = 64
    val_fraction: float = 0.15
    aux_weight: float = 0.5  # late / hybrid: weight of each modality's own classifier loss
    label_smoothing: float = 0.1
    seed: int = 0
    threads: int = 1  # heads are small: more threads only fight over the cores


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        rounded = {k: [round(v, 5) for v in getattr(self, k)] for k in ("train_loss", "val_loss", "val_accuracy")}
        return {**rounded, "best_epoch": self.best_epoch, "epochs": len(self.train_loss),
                "seconds": round(self.seconds, 2)}  # fmt: skip


@dataclass
class FusionModel:
    net: Any  # nets.FusionNet
    classes: list[str]
    dims: dict[str, int]  # the modalities the model reads, with their sizes
    config: FusionConfig
    extractors: dict[str, str] = field(default_factory=dict)
    history: History = field(default_factory=History)

    @property
    def modalities(self) -> list[str]:
        return list(self.dims)

    # --- prediction ------------------------------------------------------------------------------
    def predict_proba(self, table: FeatureTable) -> np.ndarray:
        import torch

        x, mask = _tensors(table, self.modalities)
        self.net.eval()
        with torch.no_grad():
            return self.net(x, mask).log_probs.exp().numpy()

    def predict(self, table: FeatureTable) -> np.ndarray:
        return self.predict_proba(table).argmax(axis=1)

    def explain(self, table: FeatureTable) -> list[dict[str, Any]]:
        """Per row: the label, the probabilities, and each present modality's part in the decision.

        A modality's part is how much the winning class's probability drops when that modality is hidden
        (drop-one ablation); late / hybrid models also give the learned weight of each modality and its own
        classifier's confidence in the winning class.
        """
        probs = self.predict_proba(table)
        drops = {m: self.predict_proba(_hide(table, m)) for m in self.modalities}
        weights = self._late_details(table)
        out = []
        for i, row in enumerate(probs):
            best = int(row.argmax())
            present = [m for m in self.modalities if table.present(m)[i]]
            parts = {m: round(float(row[best] - drops[m][i, best]), 4) for m in present if len(present) > 1}
            entry: dict[str, Any] = {
                "label": self.classes[best],
                "probability": round(float(row[best]), 4),
                "probabilities": {c: round(float(p), 4) for c, p in sorted(zip(self.classes, row, strict=True),
                                                                          key=lambda kv: -kv[1])},
                "modalities": present,
                "drop_one": parts,
                "driven_by": max(parts, key=parts.get) if parts else (present[0] if present else None),
            }  # fmt: skip
            if weights is not None:
                entry["late_fusion"] = {m: {"weight": round(float(weights[0][i, j]), 4),
                                            "confidence": round(float(weights[1][m][i, best]), 4)}
                                        for j, m in enumerate(self.modalities) if m in present}  # fmt: skip
            out.append(entry)
        return out

    def _late_details(self, table: FeatureTable) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        if self.config.fusion == "early":
            return None
        import torch

        x, mask = _tensors(table, self.modalities)
        self.net.eval()
        with torch.no_grad():
            output = self.net(x, mask)
        confidences = {m: torch.softmax(v, dim=-1).numpy() for m, v in output.per_modality.items()}
        return output.weights.numpy(), confidences

    # --- files -----------------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        config = {
            "format": FORMAT, "version": 1, "fusion": self.config.fusion, "classes": self.classes,
            "dims": self.dims, "extractors": self.extractors, "config": asdict(self.config),
            "history": self.history.to_dict(), "saved": datetime.now(UTC).isoformat(timespec="seconds"),
            **(extra or {}),
        }  # fmt: skip
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, extractor: FeatureExtractor | None = None) -> FusionModel:
        """Load a saved model; with ``extractor``, check that it makes the features the model was trained on."""
        from safetensors.torch import load_file

        from polymodal.train.nets import FusionNet

        folder = Path(folder).expanduser()
        config_file, weights_file = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not config_file.is_file() or not weights_file.is_file():
            raise ModelFileError(f"no fusion model at {folder} (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
        saved = json.loads(config_file.read_text())
        if saved.get("format") != FORMAT:
            raise ModelFileError(f"{config_file} is not a polymodal fusion model")
        if extractor is not None:
            extractor.check(saved["extractors"], list(saved["dims"]))
        config = FusionConfig(**saved["config"])
        net = FusionNet(config.fusion, saved["dims"], len(saved["classes"]), config.hidden, config.dropout)
        net.load_state_dict(load_file(str(weights_file)))
        net.eval()
        history = History(**{k: v for k, v in saved.get("history", {}).items() if k in History.__dataclass_fields__})
        return cls(net, saved["classes"], saved["dims"], config, saved["extractors"], history)


# --- training ------------------------------------------------------------------------------------------
def fit(
    table: FeatureTable,
    classes: list[str],
    config: FusionConfig,
    modalities: list[str] | None = None,
    verbose: bool = False,
    desc: str = "",
) -> FusionModel:
    """Train a fusion head on ``table`` (a stratified part of it held out for early stopping)."""
    import torch

    from polymodal.train.nets import FusionNet

    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, config.threads))
    modalities = modalities or [m for m in MODALITIES if m in table.x and table.present(m).any()]
    dims = {m: table.x[m].shape[1] for m in modalities}
    y = label_indices(table.labels, classes)
    train_idx, val_idx = stratified_split(y, config.val_fraction, config.seed + 1)
    train, val = table.subset(train_idx), table.subset(val_idx)
    net = FusionNet(config.fusion, dims, len(classes), config.hidden, config.dropout)
    x, mask = _tensors(train, modalities)
    net.fit_standardization(x, mask)
    model = FusionModel(net, classes, dims, config)
    model.history = _train_loop(model, (x, mask, torch.as_tensor(y[train_idx])), val, y[val_idx], verbose, desc)
    return model


def _train_loop(model: FusionModel, train: tuple, val: FeatureTable, y_val: np.ndarray, verbose: bool,
                desc: str) -> History:  # fmt: skip
    import torch
    from tqdm import tqdm

    config, net = model.config, model.net
    x, mask, y = train
    weights = class_weights(y.numpy(), len(model.classes))
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    history, best, best_score, started = History(), None, None, time.perf_counter()
    val_tensors = _tensors(val, model.modalities) if len(val) else None
    bar = tqdm(range(config.max_epochs), desc=desc or config.fusion, unit="epoch", file=sys.stderr,
               disable=not verbose, dynamic_ncols=True, leave=False)  # fmt: skip
    for epoch in bar:
        history.train_loss.append(_epoch(model, x, mask, y, weights, optimizer, generator))
        val_loss, val_accuracy = _validate(model, val_tensors, y_val, weights)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_accuracy)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_accuracy:.3f}",
                        refresh=False)
        # Validation accuracy decides, its loss breaks ties: the weighted loss of a few rare-class rows is noisy.
        score = (val_accuracy, -val_loss) if val_tensors is not None else (0.0, -history.train_loss[-1])
        if best_score is None or score > best_score:
            best_score, history.best_epoch = score, epoch + 1
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch + 1 - history.best_epoch >= config.patience:
            break
    bar.close()
    if best is not None:
        net.load_state_dict(best)
    net.eval()
    history.seconds = time.perf_counter() - started
    return history


def _epoch(model: FusionModel, x: dict, mask: Any, y: Any, weights: Any, optimizer: Any, generator: Any) -> float:
    import torch

    config, net = model.config, model.net
    net.train()
    order = torch.randperm(len(y), generator=generator)
    total = 0.0
    for start in range(0, len(y), config.batch_size):
        batch = order[start : start + config.batch_size]
        batch_mask = _modality_dropout(mask[batch], config.modality_dropout, generator)
        output = net({m: v[batch] for m, v in x.items()}, batch_mask)
        loss = _loss(output, y[batch], batch_mask, weights, config.aux_weight, config.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    return total / max(1, len(y))


def _loss(output: Any, y: Any, mask: Any, weights: Any, aux_weight: float, label_smoothing: float) -> Any:
    import torch.nn.functional as F  # noqa: N812

    loss = _smoothed_nll(output.log_probs, y, weights, label_smoothing)
    if output.per_modality:
        aux = []
        for i, logits in enumerate(output.per_modality.values()):
            rows = mask[:, i]
            if rows.any():
                aux.append(F.cross_entropy(logits[rows], y[rows], weight=weights, label_smoothing=label_smoothing))
        loss = loss + aux_weight * sum(aux) / max(1, len(aux))
    return loss


def _smoothed_nll(log_probs: Any, y: Any, weights: Any, smoothing: float) -> Any:
    """Class-weighted NLL with label smoothing (keeps the heads from growing over-confident on few rows)."""
    import torch.nn.functional as F  # noqa: N812

    nll = F.nll_loss(log_probs, y, weight=weights, reduction="none")
    uniform = -log_probs.mean(dim=1) * weights[y]
    return ((1 - smoothing) * nll + smoothing * uniform).sum() / weights[y].sum()


def _validate(model: FusionModel, val: tuple | None, y_val: np.ndarray, weights: Any) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F  # noqa: N812

    if val is None:
        return float("nan"), float("nan")
    model.net.eval()
    with torch.no_grad():
        log_probs = model.net(*val).log_probs
    y = torch.as_tensor(y_val)
    accuracy = float((log_probs.argmax(dim=1) == y).float().mean())
    return float(F.nll_loss(log_probs, y, weight=weights)), accuracy


def _modality_dropout(mask: Any, p: float, generator: Any) -> Any:
    """Hide each present modality with chance ``p``; a row always keeps at least one."""
    import torch

    if p <= 0:
        return mask
    noise = torch.rand(mask.shape, generator=generator)
    kept = mask & (noise >= p)
    empty = ~kept.any(dim=1)
    if empty.any():  # keep the present modality with the largest draw
        best = noise.masked_fill(~mask, -1.0).argmax(dim=1)
        rescue = torch.zeros_like(mask)
        rescue[torch.arange(len(mask)), best] = True
        kept = kept | (rescue & empty[:, None])
    return kept


def _tensors(table: FeatureTable, modalities: list[str]) -> tuple[dict[str, Any], Any]:
    import torch

    x = {}
    for m in modalities:
        values = table.x.get(m)
        x[m] = torch.as_tensor(values if values is not None else np.zeros((len(table), 1), np.float32))
    mask = torch.as_tensor(np.stack([table.present(m) for m in modalities], axis=1))
    return x, mask


def _hide(table: FeatureTable, modality: str) -> FeatureTable:
    mask = table.mask.copy()
    mask[:, MODALITIES.index(modality)] = False
    empty = ~mask.any(axis=1)
    mask[empty] = table.mask[empty]  # a row with nothing else keeps it (its drop is then 0)
    return FeatureTable(table.x, mask, table.labels, table.lines)


# --- splits and labels -----------------------------------------------------------------------------------
def label_indices(labels: list[str | None], classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[label] for label in labels], np.int64)


def class_weights(y: np.ndarray, n_classes: int) -> Any:
    """Inverse-frequency weights (mean 1 over the classes present), so rare classes count as much."""
    import torch

    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
    return torch.as_tensor(weights, dtype=torch.float32)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held-out) indices with about ``fraction`` of each class held out (none of a class of one)."""
    rng = np.random.default_rng(seed)
    rest, held = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        take = int(round(fraction * len(members))) if len(members) > 1 else 0
        take = min(max(take, 1 if fraction > 0 and len(members) > 2 else take), len(members) - 1)
        held += members[:take].tolist()
        rest += members[take:].tolist()
    return np.sort(np.array(rest, np.int64)), np.sort(np.array(held, np.int64))


def stratified_folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``k`` disjoint test folds, each class spread evenly over them (scikit-learn's ``StratifiedKFold``; a class
    with fewer than ``k`` rows is in fewer folds)."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    from polymodal.errors import UsageError

    largest = int(np.bincount(y).max(initial=0)) if len(y) else 0
    if largest < k:
        raise UsageError(f"{k} folds need at least {k} rows of some label; the largest label has {largest}")
    with warnings.catch_warnings():  # "the least populated class has only n members": small classes are expected
        warnings.simplefilter("ignore", UserWarning)
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
        return [np.sort(test.astype(np.int64)) for _, test in splits]


# --- experiments: the fusion model, single-modality baselines, ablations -----------------------------
@dataclass
class Experiment:
    classes: list[str]
    fusion: str
    results: dict[str, Metrics]  # entry name -> metrics (pooled over folds)
    histories: dict[str, History]  # of the last fold's fusion model and baselines
    model: FusionModel | None  # the fusion model to save
    split: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fusion": self.fusion, "classes": self.classes, "split": self.split,
            "results": {name: m.to_dict(confusion=name == "fusion") for name, m in self.results.items()},
        }  # fmt: skip


def run_experiment(
    table: FeatureTable,
    config: FusionConfig,
    folds: int = 0,
    test_fraction: float = 0.2,
    baselines: bool = True,
    verbose: bool = False,
    test: FeatureTable | None = None,
    final: bool = True,
) -> Experiment:
    """Train and score: a held-out split (or ``test``), or ``folds``-fold cross-validation (then, if ``final``,
    a model on all rows). Scores the fusion model, each single-modality baseline and drop-one ablations."""
    classes = sorted({label for label in table.labels if label is not None})
    y = label_indices(table.labels, classes)
    if test is not None:
        splits = [(np.arange(len(table)), None)]
    elif folds and folds > 1:
        test_folds = stratified_folds(y, folds, config.seed)
        splits = [(np.setdiff1d(np.arange(len(table)), f), f) for f in test_folds]
    else:
        splits = [stratified_split(y, test_fraction, config.seed)]
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    histories: dict[str, History] = {}
    model = None
    for number, (train_idx, test_idx) in enumerate(splits, 1):
        tag = f"fold {number}/{len(splits)} " if len(splits) > 1 else ""
        held = test if test is not None else table.subset(test_idx)
        model, fold_histories = _one_split(table.subset(train_idx), held, classes, config, baselines, verbose, tag,
                                           parts)  # fmt: skip
        histories.update(fold_histories)
    if len(splits) > 1 and final:
        model = fit(table, classes, config, verbose=verbose, desc=f"{config.fusion} (all rows)")
        histories["fusion"] = model.history
    results = {name: pooled(p, classes) for name, p in parts.items()}
    split = {"rows": len(table), "folds": len(splits) if len(splits) > 1 else 0, "seed": config.seed,
             "test_rows": sum(len(p[0]) for p in parts.get("fusion", []))}  # fmt: skip
    if len(splits) == 1 and test is None:
        split.update(train_rows=len(splits[0][0]), test_fraction=test_fraction)
    return Experiment(classes, config.fusion, results, histories, model, split)


def _one_split(train: FeatureTable, test: FeatureTable, classes: list[str], config: FusionConfig, baselines: bool,
               verbose: bool, tag: str, parts: dict) -> tuple[FusionModel, dict[str, History]]:  # fmt: skip
    model = fit(train, classes, config, verbose=verbose, desc=f"{tag}{config.fusion}")
    histories = {"fusion": model.history}
    score_model(model, test, classes, parts)
    if baselines:
        for m in model.modalities:
            rows = train.keep_modalities([m])
            if len(set(rows.labels)) < 2:
                continue
            single = fit(rows, classes, _early(config), modalities=[m], verbose=verbose, desc=f"{tag}{m} only")
            histories[f"{m} only"] = single.history
            _score(single, test.keep_modalities([m]), classes, parts, f"{m} only")
    return model, histories


def score_model(model: FusionModel, test: FeatureTable, classes: list[str], parts: dict) -> None:
    """Add the model's predictions on ``test`` to ``parts``: all rows, rows by modality, drop-one ablations."""
    _score(model, test, classes, parts, "fusion")
    for m in model.modalities:
        _score(model, test.subset(np.flatnonzero(test.present(m))), classes, parts, f"fusion, rows with {m}")
        if len(model.modalities) > 1:
            _score(model, test.without(m), classes, parts, f"fusion without {m}")
            _score(model, test.keep_modalities([m]), classes, parts, f"fusion, {m} alone")
    combos = {tuple(m for m in model.modalities if test.present(m)[i]) for i in range(len(test))}
    for combo in sorted(combos):
        if combo:
            rows = np.flatnonzero([tuple(m for m in model.modalities if test.present(m)[i]) == combo
                                   for i in range(len(test))])  # fmt: skip
            _score(model, test.subset(rows), classes, parts, f"fusion, rows with exactly {'+'.join(combo)}")


def _score(model: FusionModel, table: FeatureTable, classes: list[str], parts: dict, name: str) -> None:
    if len(table) == 0:
        return
    y = label_indices(table.labels, classes)
    parts.setdefault(name, []).append((y, model.predict(table)))


def _early(config: FusionConfig) -> FusionConfig:
    from dataclasses import replace

    return replace(config, fusion="early", modality_dropout=0.0)


def evaluate(model: FusionModel, table: FeatureTable) -> dict[str, Metrics]:
    """Score a trained model on a labelled table: all rows, by modality, drop-one and single-modality."""
    parts: dict[str, list] = {}
    score_model(model, table, model.classes, parts)
    return {name: pooled(p, model.classes) for name, p in parts.items()}
