"""The trainable heads (PyTorch): fusion classifiers and the aligner MLP. Imported only when training.

Inputs are per-modality vectors ``x[m]`` (n, d_m) and a mask (n, M) saying which modalities a row has.
Every network standardises its inputs with statistics stored as buffers (so they are saved with the weights).

- ``early``: each modality -> a learned projection; the projections (zero where missing) and the mask are
  concatenated into one classifier.
- ``late``: one classifier per modality; their log-probabilities are combined with learned weights,
  renormalised over the modalities a row has (a weighted product of experts).
- ``hybrid``: cross-modal attention over modality tokens (plus a [CLS] token; missing modalities are
  masked out of the attention) *and* the late per-modality classifiers, mixed by a learned gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

FUSIONS = ("early", "late", "hybrid")


@dataclass
class Output:
    log_probs: Tensor  # (n, classes)
    per_modality: dict[str, Tensor] | None = None  # logits of each modality's own classifier (late, hybrid)
    weights: Tensor | None = None  # (n, M) weight of each modality in the late combination


class Standardize(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: Tensor) -> None:
        if len(x):
            self.mean.copy_(x.mean(dim=0))
            self.std.copy_(x.std(dim=0, unbiased=False).clamp_min(1e-4) if len(x) > 1 else torch.ones_like(x[0]))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class ModalityEncoder(nn.Module):
    """Standardise -> Linear -> GELU -> Dropout: a modality's vector as a ``hidden``-d token."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.standardize = Standardize(dim)
        self.net = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.standardize(x))


class FusionNet(nn.Module):
    def __init__(self, fusion: str, dims: dict[str, int], n_classes: int, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        self.fusion, self.modalities = fusion, list(dims)
        m = len(self.modalities)
        self.encoders = nn.ModuleDict({name: ModalityEncoder(d, hidden, dropout) for name, d in dims.items()})
        if fusion == "early":
            self.classifier = nn.Sequential(
                nn.Linear(m * hidden + m, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
            )
        else:
            self.heads = nn.ModuleDict({name: nn.Linear(hidden, n_classes) for name in dims})
            self.modality_weights = nn.Parameter(torch.zeros(m))
        if fusion == "hybrid":
            self.embeddings = nn.Parameter(torch.randn(m, hidden) * 0.02)
            self.cls = nn.Parameter(torch.zeros(1, 1, hidden))
            self.norm1, self.norm2, self.norm3 = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
            self.attention = nn.MultiheadAttention(hidden, 4, dropout=dropout, batch_first=True)
            self.ffn = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(2 * hidden, hidden))  # fmt: skip
            self.attention_head = nn.Linear(hidden, n_classes)
            self.gate = nn.Parameter(torch.zeros(1))

    def fit_standardization(self, x: dict[str, Tensor], mask: Tensor) -> None:
        for i, name in enumerate(self.modalities):
            self.encoders[name].standardize.fit(x[name][mask[:, i]])

    def forward(self, x: dict[str, Tensor], mask: Tensor) -> Output:
        maskf = mask.float()
        tokens = torch.stack([self.encoders[n](x[n]) for n in self.modalities], dim=1)  # (n, M, h)
        tokens = tokens * maskf[..., None]
        if self.fusion == "early":
            joined = torch.cat([tokens.flatten(1), maskf], dim=1)
            return Output(torch.log_softmax(self.classifier(joined), dim=-1))
        late = self._late(tokens, mask)
        if self.fusion == "late":
            return late
        attended = torch.log_softmax(self._attend(tokens, mask), dim=-1)
        gate = torch.sigmoid(self.gate)
        mixed = torch.log_softmax(gate * attended + (1 - gate) * late.log_probs, dim=-1)
        return Output(mixed, late.per_modality, late.weights)

    def _late(self, tokens: Tensor, mask: Tensor) -> Output:
        logits = {n: self.heads[n](tokens[:, i]) for i, n in enumerate(self.modalities)}
        scores = self.modality_weights.expand(len(mask), -1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # over the modalities each row has
        stacked = torch.stack([torch.log_softmax(logits[n], dim=-1) for n in self.modalities], dim=1)
        combined = (weights[..., None] * stacked.nan_to_num(0.0)).sum(dim=1)
        return Output(torch.log_softmax(combined, dim=-1), logits, weights)

    def _attend(self, tokens: Tensor, mask: Tensor) -> Tensor:
        sequence = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens + self.embeddings], dim=1)
        ignore = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
        query = self.norm1(sequence)
        attended, _ = self.attention(query, query, query, key_padding_mask=ignore, need_weights=False)
        sequence = sequence + attended
        sequence = sequence + self.ffn(self.norm2(sequence))
        return self.attention_head(self.norm3(sequence[:, 0]))


class AlignerNet(nn.Module):
    """Frozen features -> the text space: Linear -> GELU (tanh) -> Dropout -> Linear (LiT-style head)."""

    def __init__(self, dim_in: int, dim_out: int, hidden: int = 1024, dropout: float = 0.2, temperature: float = 0.07):
        super().__init__()
        self.standardize = Standardize(dim_in)
        self.fc1, self.fc2 = nn.Linear(dim_in, hidden), nn.Linear(hidden, dim_out)
        self.act, self.drop = nn.GELU(approximate="tanh"), nn.Dropout(dropout)
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1.0 / temperature)))))

    def forward(self, x: Tensor) -> Tensor:
        out = self.fc2(self.drop(self.act(self.fc1(self.standardize(x)))))
        return nn.functional.normalize(out, dim=-1)
