"""LiT-style aligners: frozen image (or audio) features -> the text space, trained contrastively on pairs.

The recipe measured in shared/FINDINGS.md: features standardised on the training pairs, Linear(d -> 1024)
-> GELU -> Dropout 0.2 -> Linear(-> text dim), symmetric InfoNCE with a learned temperature (from 1/0.07),
AdamW (lr 1e-3, weight decay 0.1), cosine schedule, ~100 full-batch steps; each step takes one random item
per distinct text, so items sharing a caption are never each other's negatives. The aligned vector is then
averaged 0.5 / 0.5 with the label-bridge vector, which is what helps on held-out data (the aligner alone
memorises its training pairs). Recall is reported on texts held out by caption group: bridge, aligner, average.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.config import Settings
from polymodal.errors import UsageError
from polymodal.models.text import normalize
from polymodal.space.aligner import Aligner, AlignerHead, weights_digest
from polymodal.train import report as reports
from polymodal.train.features import FeatureExtractor
from polymodal.train.manifest import Problem, read_manifest

KS = (1, 5, 10)
FEATURE_PART = {"image": "features", "audio": "scores"}
FEATURE_FAMILY = {"image": "image", "audio": "sound"}
MIN_GROUPS = 4  # distinct texts needed to train a head for a modality


@dataclass
class AlignConfig:
    hidden: int = 1024
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.1
    steps: int = 100
    temperature: float = 0.07  # initial; learned
    blend: float = 0.5  # the aligner's share in the vector averaged with the label bridge
    holdout: float = 0.3  # share of distinct texts held out to measure recall
    seed: int = 0
    threads: int = 1


@dataclass
class Pairs:
    """Items of one modality with their texts: ``features`` (n, d), ``bridge`` (n, t), ``text`` (n, t)."""

    modality: str
    features: np.ndarray
    bridge: np.ndarray
    text: np.ndarray
    groups: np.ndarray  # (n,) index of each item's distinct text
    captions: list[str]

    def subset(self, index: np.ndarray) -> Pairs:
        return Pairs(self.modality, self.features[index], self.bridge[index], self.text[index], self.groups[index],
                     [self.captions[i] for i in index])  # fmt: skip


# --- training -------------------------------------------------------------------------------------------------
def fit(pairs: Pairs, config: AlignConfig, verbose: bool = False) -> tuple[Any, list[float]]:
    """Train an aligner head on ``pairs``; returns the network and the loss at each step."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    from tqdm import tqdm

    from polymodal.train.nets import AlignerNet

    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, config.threads))
    x, t = torch.as_tensor(pairs.features), torch.as_tensor(pairs.text)
    net = AlignerNet(x.shape[1], t.shape[1], config.hidden, config.dropout, config.temperature)
    net.standardize.fit(x)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.steps))
    members = [np.flatnonzero(pairs.groups == g) for g in np.unique(pairs.groups)]
    rng = np.random.default_rng(config.seed)
    losses: list[float] = []
    net.train()
    bar = tqdm(range(config.steps), desc=f"aligner ({pairs.modality})", unit="step", file=sys.stderr,
               disable=not verbose, dynamic_ncols=True, leave=False)  # fmt: skip
    for _ in bar:
        batch = torch.as_tensor([int(rng.choice(m)) for m in members])  # one item per distinct text
        logits = net.logit_scale.exp().clamp(max=100.0) * net(x[batch]) @ t[batch].T
        target = torch.arange(len(batch))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", temperature=f"{1 / net.logit_scale.exp().item():.4f}", refresh=False)
    bar.close()
    net.eval()
    return net, losses


def head(net: Any, modality: str, feature_model: str) -> AlignerHead:
    """The numpy inference head (what indexing uses) of a trained network."""
    tensors = {
        "mean": net.standardize.mean, "std": net.standardize.std, "w1": net.fc1.weight, "b1": net.fc1.bias,
        "w2": net.fc2.weight, "b2": net.fc2.bias,
    }  # fmt: skip
    return AlignerHead(modality, feature_model, {k: v.detach().numpy().astype(np.float32) for k, v in tensors.items()})


# --- scoring ---------------------------------------------------------------------------------------------------
def recall_at(queries: np.ndarray, query_groups: np.ndarray, gallery: np.ndarray, gallery_groups: np.ndarray,
              ks: tuple[int, ...] = KS) -> dict[str, float]:  # fmt: skip
    """Text -> item recall@k in %: a hit is any item of the query's group among the top k."""
    order = np.argsort(-(queries @ gallery.T), axis=1, kind="stable")[:, : max(ks)]
    hits = gallery_groups[order] == query_groups[:, None]
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), max(ks))
    return {f"R@{k}": round(100 * float((first < k).mean()), 1) for k in ks}


def score(head_: AlignerHead, test: Pairs, blend: float) -> dict[str, dict[str, float]]:
    """Recall on held-out pairs: the label bridge alone, the aligner alone, and their average."""
    groups = np.unique(test.groups)
    queries = np.stack([test.text[np.flatnonzero(test.groups == g)[0]] for g in groups])
    aligned = head_.project(test.features)
    averaged = normalize(blend * aligned + (1 - blend) * test.bridge)
    return {
        "label bridge": recall_at(queries, groups, test.bridge, test.groups),
        "aligner alone": recall_at(queries, groups, aligned, test.groups),
        f"aligner + bridge ({blend:g} / {1 - blend:g})": recall_at(queries, groups, averaged, test.groups),
    }


def split_groups(groups: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) item indices, whole groups (distinct texts) on one side."""
    unique = np.random.default_rng(seed).permutation(np.unique(groups))
    held = set(unique[: int(round(holdout * len(unique)))].tolist())
    is_held = np.array([g in held for g in groups])
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


# --- from a manifest ----------------------------------------------------------------------------------------------
def load_pairs(extractor: FeatureExtractor, manifest: str | Path, verbose: bool = False
               ) -> tuple[dict[str, Pairs], list[Problem], Any]:  # fmt: skip
    """Per modality (image, audio), the manifest's items with their texts; rows without text are problems."""
    from polymodal.train.run import features

    parsed = read_manifest(manifest, require_label=False)
    problems = list(parsed.problems)
    rows = []
    for row in parsed.rows:
        if row.text is None:
            problems.append(Problem(row.line, "no text to align with"))
        elif row.image is None and row.audio is None:
            problems.append(Problem(row.line, "no image or audio file"))
        else:
            rows.append(row)
    table, bad = features(extractor, rows, verbose)
    problems = sorted(problems + bad, key=lambda p: p.line)
    out: dict[str, Pairs] = {}
    for modality in ("image", "audio"):
        index = np.flatnonzero(table.present(modality) & table.present("text"))
        if len(index):
            out[modality] = pairs_from_table(extractor, modality, table, index, rows)
    return out, problems, parsed


def pairs_from_table(extractor: FeatureExtractor, modality: str, table: Any, index: np.ndarray, rows: list) -> Pairs:
    by_line = {r.line: r.text.strip() for r in rows}
    captions = [by_line[table.lines[i]] for i in index]
    group_of = {c: g for g, c in enumerate(dict.fromkeys(captions))}
    vectors = table.x[modality][index]
    return Pairs(modality, extractor.part(modality, FEATURE_PART[modality], vectors).copy(),
                 extractor.part(modality, "bridge", vectors).copy(), table.x["text"][index],
                 np.array([group_of[c] for c in captions]), captions)  # fmt: skip


def train_align(
    manifest: str | Path,
    out: str | Path,
    *,
    config: AlignConfig | None = None,
    refit: bool = True,
    settings: Settings | None = None,
    store: Any = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train aligners on a pairs manifest, report held-out recall, save them to ``out``; returns the report."""
    from polymodal.train.run import extractor_for

    config = config or AlignConfig()
    extractor = extractor_for(settings, store)
    found, problems, parsed = load_pairs(extractor, manifest, verbose)
    usable = {m: p for m, p in found.items() if len(np.unique(p.groups)) >= MIN_GROUPS}
    if not usable:
        raise UsageError(f"need pairs with at least {MIN_GROUPS} distinct texts; found "
                         + (", ".join(f"{m}: {len(np.unique(p.groups))}" for m, p in found.items()) or "none"))
    heads, sections, curves = {}, {}, {}
    for modality, pairs in usable.items():
        heads[modality], sections[modality], curves[modality] = _train_one(extractor, pairs, config, refit, verbose)
    out = Path(out).expanduser()
    aligner = _aligner(out, extractor, heads, config, sections)
    aligner.save(out)
    first = next(iter(sections))
    report = {
        "title": f"Aligner {aligner.id}", "manifest": str(parsed.path), "aligner_id": aligner.id,
        "blend": config.blend, "refit": refit, "config": asdict(config),
        "problems": [p.to_dict() for p in problems], **sections[first],
        "heads": sections, "files": {"aligner": str(out)},
    }  # fmt: skip
    report["files"]["curves_png"] = str(reports.plot_curves(
        {f"{m} loss": {"train_loss": c} for m, c in curves.items()}, out / "curves.png", "Aligner training (steps)"))
    report["files"].update(reports.write(out, "report", report, reports.align_markdown(report)))
    return report


def _train_one(extractor: FeatureExtractor, pairs: Pairs, config: AlignConfig, refit: bool, verbose: bool
               ) -> tuple[AlignerHead, dict[str, Any], list[float]]:  # fmt: skip
    feature_model = extractor.analyzer.model(FEATURE_FAMILY[pairs.modality]).model_id
    train_idx, test_idx = split_groups(pairs.groups, config.holdout, config.seed)
    started = time.perf_counter()
    net, losses = fit(pairs.subset(train_idx), config, verbose)
    recall = score(head(net, pairs.modality, feature_model), pairs.subset(test_idx), config.blend) if len(
        test_idx) else {}  # fmt: skip
    if refit:
        net, losses = fit(pairs, config, verbose)
    section = {
        "modality": pairs.modality, "pairs": len(pairs.groups), "groups": len(np.unique(pairs.groups)),
        "holdout": {"queries": len(np.unique(pairs.groups[test_idx])), "items": len(test_idx),
                    "train_items": len(train_idx)},
        "recall": recall, "temperature": round(1 / net.logit_scale.exp().item(), 4),
        "seconds": round(time.perf_counter() - started, 2),
    }  # fmt: skip
    return head(net, pairs.modality, feature_model), section, losses


def _aligner(out: Path, extractor: FeatureExtractor, heads: dict[str, AlignerHead], config: AlignConfig,
             sections: dict[str, Any]) -> Aligner:  # fmt: skip
    digest = weights_digest({f"{m}.{k}": v for m, h in heads.items() for k, v in h.tensors.items()})
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", out.name).strip("-.") or "aligner"
    meta = {"recall": {m: s["recall"] for m, s in sections.items()}, "config": asdict(config)}
    return Aligner(f"{name}-{digest}", extractor.analyzer.model("text").model_id, config.blend, heads, out, meta)
