"""Zero-shot classification of an image, a sound or a text against labels the user writes (English or Chinese).

The item goes through the one analysis path (:class:`polymodal.analysis.Analyzer`) and becomes one vector in
the shared text space, exactly as a search query does (:func:`polymodal.analysis.media_vector`): an image's
label-bridge vector joined by its OCR text, a sound's tag-bridge vector joined by its transcript, a text's
mean passage vector. Each label becomes a prompt ("a photo of a {}", "the sound of {}", "this text is about
{}"; Chinese labels get Chinese prompts), and the scores are a softmax over the cosines at a temperature
calibrated on real data (``bench/calibrate_temperature.py``).

Images and sounds are seen through a fixed vocabulary (1000 ImageNet classes, 521 AudioSet classes). A label
far from every name in it cannot be recognised, whatever its score: such labels get a warning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import Analyzer, Evidence, media_vector
from polymodal.errors import UsageError
from polymodal.media.detect import detect
from polymodal.media.errors import MediaError
from polymodal.models.text import normalize

# Prompt templates per modality: (for labels without Chinese characters, for labels with them).
TEMPLATES: dict[str, tuple[str, str]] = {
    "image": ("a photo of a {}", "一张{}的照片"),
    "audio": ("the sound of {}", "{}的声音"),
    "text": ("this text is about {}", "这段文字是关于{}的"),
}
# Softmax temperatures over label cosines, fitted by ``bench/calibrate_temperature.py`` (2026-11-23, label bridge
# "bridge2"): the temperature minimising the negative log-likelihood of the true label, English and Chinese
# label sets together (results in bench/results/calibration.json):
# image: 3,000 Fashion-MNIST train images (300 per class), 10 garment labels (top-1 21 % EN / 19 % ZH, chance
#        10 %: the bridge reads grey garment silhouettes poorly, so this temperature is a cautious one);
# audio: 95 Tux Paint stamp sound effects (each against its description + 9 others, 3 draws; top-1 27 % EN /
#        33 % ZH) and the 10 ovos animal recordings (10 animal labels; top-1 60-70 %);
# text:  Tux Paint stamp descriptions (952 English, 775 Chinese) against the 16 stamp categories (56 %).
# Refit when the bridge recipe or the text encoder changes.
TEMPERATURE: dict[str, float] = {"image": 0.133, "audio": 0.112, "text": 0.033}
# Label coverage: the cosine between a label and the nearest class name of the model's vocabulary, both
# embedded bare and centred on the vocabulary's mean (what every class name shares is removed). Below the
# threshold the model has nothing that means the label. Thresholds from ``bench/calibrate_temperature.py``
# on labels inside and outside each vocabulary (``COVERAGE_PROBES`` there; balanced accuracy 0.93 image,
# 0.95 audio). Known blind spot: look-alike words pass ("quasar" is close to "quail" for a sub-word encoder),
# and broad words sit near the line ("dog" 0.52, "flower" 0.54: ImageNet has breeds and species, not "dog").
COVERAGE_THRESHOLD: dict[str, float] = {"image": 0.51, "audio": 0.46}
_FAMILY = {"image": "image", "audio": "sound"}
_MODEL_WORDS = {"image": "the image model", "audio": "the sound model"}
_LABEL_SPLIT = re.compile(r"[,，、;；\n]")
_ARTICLE = re.compile(r"(a|an|the|my|our|your|his|her|their|this|that|some)\s", re.I)
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class LabelScore:
    label: str
    score: float  # softmax probability over all the labels given
    similarity: float  # cosine between the item and the label's prompt
    prompt: str
    closest: str | None = None  # nearest class the image / sound model knows
    coverage: float | None = None  # centred cosine to it (see COVERAGE_THRESHOLD)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "score": round(self.score, 4),
            "similarity": round(self.similarity, 4),
            "prompt": self.prompt,
        }
        if self.closest is not None:
            out.update(closest=self.closest, coverage=round(self.coverage or 0.0, 3))
        return out


@dataclass
class Classification:
    source: str | None
    modality: str
    scores: list[LabelScore]  # best first; only the top k when k was given
    temperature: float
    warnings: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)  # what the item was read as

    @property
    def best(self) -> LabelScore:
        return self.scores[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "modality": self.modality,
            "labels": [s.to_dict() for s in self.scores],
            "temperature": self.temperature,
            "warnings": self.warnings,
            "evidence": [e.to_dict() for e in self.evidence],
        }

    def to_text(self) -> str:
        width = max(len(s.label) for s in self.scores)
        lines = [f"{s.label.ljust(width)}  {s.score:6.1%}  {_bar(s.score)}" for s in self.scores]
        seen = _seen_as(self.evidence)
        if seen:
            lines.append(f"({self.modality} read as: {seen})")
        lines += [f"(scores from the {e.text})" for e in self.evidence if e.kind == "model"]  # polymodal.spaces
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def parse_labels(text: str) -> list[str]:
    """Labels from one string: separated by commas (also ``，`` and ``、``), semicolons or newlines."""
    return list(dict.fromkeys(part.strip() for part in _LABEL_SPLIT.split(text) if part.strip()))


def classify(
    analyzer: Analyzer,
    source: Path | None,
    labels: Sequence[str],
    top_k: int | None = None,
    template: str | None = None,
    *,
    text: str | None = None,
    temperature: float | None = None,
) -> Classification:
    """Score ``labels`` for the file ``source`` (image, audio or text), or for ``text`` given directly.

    ``template`` replaces the modality's prompt template (it must contain ``{}``); ``temperature`` the
    calibrated one. Scores sum to one over all labels, also when ``top_k`` shows only the best ones.
    """
    labels = _check_labels(labels)
    if template is not None and "{}" not in template:
        raise UsageError("a template must contain {} where the label goes, e.g. 'a drawing of a {}'")
    opened = _open_vocabulary(analyzer, source, labels, template, top_k, temperature) if text is None else None
    if opened is not None:  # the collection has an open-vocabulary model (CLIP, SigLIP, CLAP) for this file
        return opened
    modality, vector, evidence = represent(analyzer, source, text)
    prompts = label_prompts(labels, modality, template)
    similarities = analyzer.model("text").encode(prompts) @ vector
    t = temperature or TEMPERATURE[modality]
    probabilities = softmax(similarities / t)
    scores = [
        LabelScore(label, float(p), float(s), prompt)
        for label, p, s, prompt in zip(labels, probabilities, similarities, prompts, strict=True)
    ]
    content = _content_word(evidence)
    warnings = _coverage(analyzer, modality, scores, content) if modality in _FAMILY else []
    scores.sort(key=lambda s: -s.score)
    return Classification(
        None if source is None else str(source), modality, scores[: top_k or None], t, warnings, evidence
    )


def _open_vocabulary(
    analyzer: Analyzer,
    source: Path | None,
    labels: list[str],
    template: str | None,
    top_k: int | None,
    temperature: float | None,
) -> Classification | None:
    """Scores from the open-vocabulary space that reads the file's modality (:mod:`polymodal.spaces`), at the
    model's own trained temperature; None when there is none. Its vocabulary is open: no coverage warnings."""
    from polymodal import spaces

    if source is None or (modality := detect(Path(source)).modality) not in ("image", "audio"):
        return None
    prompts = label_prompts(labels, modality, template)
    found = spaces.zero_shot(analyzer.settings, modality, Path(source), prompts)
    if found is None:
        return None
    similarities, scale, model = found
    t = temperature or 1.0 / scale
    probabilities = softmax(similarities / t)
    scores = [
        LabelScore(label, float(p), float(s), prompt)
        for label, p, s, prompt in zip(labels, probabilities, similarities, prompts, strict=True)
    ]
    scores.sort(key=lambda s: -s.score)
    scored_by = [Evidence("model", f"open-vocabulary model {model}")]
    return Classification(str(source), modality, scores[: top_k or None], t, [], scored_by)


def represent(analyzer: Analyzer, source: Path | None, text: str | None = None) -> tuple[str, np.ndarray, list]:
    """(modality, unit vector in the text space, evidence) for a file or a piece of text."""
    if text is not None:
        if not text.strip():
            raise UsageError("the text to classify is empty")
        return "text", analyzer.model("text").encode([text])[0], []
    if source is None:
        raise UsageError("give a file or a text to classify")
    if detect(Path(source)).modality == "video":  # no calibrated temperature: not worth a whole video's analysis
        raise MediaError("classify takes an image, a recording or a document; describe or search a video instead")
    analysis = analyzer.analyze_file(Path(source))  # perceive + embed
    if analysis.modality == "text":
        return "text", normalize(np.mean([v.vector for v in analysis.vectors], axis=0)), []
    return analysis.modality, media_vector(analysis), analysis.evidence


def label_prompts(labels: Sequence[str], modality: str, template: str | None = None) -> list[str]:
    """One prompt per label: the given template, or the modality's English / Chinese one by the label."""
    english, chinese = TEMPLATES[modality]
    return [fill(template or (chinese if _CJK.search(label) else english), label) for label in labels]


def fill(template: str, label: str) -> str:
    """``template`` with ``label`` in it, with English articles fixed: "a photo of a {}" gives "a photo of an
    apple" and "a photo of the Eiffel Tower", not "a photo of a a ..."."""
    before, _, after = template.partition("{}")
    if re.search(r"\b(a|an)\s$", before, re.I):
        if _ARTICLE.match(label):
            before = re.sub(r"\b(a|an)\s$", "", before, flags=re.I)
        elif label[:1].lower() in "aeio":  # not "u": a unicorn, a user
            before = re.sub(r"\ba\s$", "an ", before)
    return before + label + after


def coverage(analyzer: Analyzer, modality: str, labels: Sequence[str]) -> list[tuple[str, float]]:
    """For each label, the nearest class name in the image / sound model's vocabulary and the centred
    cosine to it (see ``COVERAGE_THRESHOLD``)."""
    vocabulary, mean = _bare_vocabulary(analyzer, _FAMILY[modality])
    queries = normalize(analyzer.model("text").encode(list(labels)) - mean)
    cosines = queries @ vocabulary.T
    names = analyzer.model(_FAMILY[modality]).labels
    return [(names[int(row.argmax())], float(row.max())) for row in cosines]


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - np.max(x))
    return shifted / shifted.sum()


def _check_labels(labels: Sequence[str]) -> list[str]:
    cleaned = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if len(cleaned) < 2:
        raise UsageError("give at least two different labels, e.g. --labels 'cat,dog'")
    return cleaned


def _content_word(evidence: list[Evidence]) -> str | None:
    """What, besides the model's labels, speaks for the item: "speech" or "text" in it, if any."""
    kinds = {e.kind for e in evidence}
    return "speech" if "transcript" in kinds else "text" if "ocr" in kinds else None


def _coverage(analyzer: Analyzer, modality: str, scores: list[LabelScore], content: str | None) -> list[str]:
    warnings = []
    threshold = COVERAGE_THRESHOLD[modality]
    consequence = f"only the {content} in it can support it" if content else "scores for it are unreliable"
    for score, (closest, cosine) in zip(scores, coverage(analyzer, modality, [s.label for s in scores]), strict=True):
        score.closest, score.coverage = closest, cosine
        if cosine < threshold:
            warnings.append(
                f"{score.label!r} is far from anything {_MODEL_WORDS[modality]} knows "
                f"(closest: {closest!r}, {cosine:.2f}); {consequence}"
            )
    return warnings


_BARE: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}


def _bare_vocabulary(analyzer: Analyzer, family: str) -> tuple[np.ndarray, np.ndarray]:
    """The model's class names embedded without a template, centred and unit length; and their mean."""
    from polymodal.space.bridge import LabelBridge

    encoder, model = analyzer.model("text"), analyzer.model(family)
    key = (model.model_id, encoder.model_id)
    if key not in _BARE:
        names = model.labels
        matrix = LabelBridge(encoder, names, "{}", analyzer.settings.cache).matrix  # cached on disk
        mean = matrix.mean(axis=0)
        _BARE[key] = (normalize(matrix - mean), mean)
    return _BARE[key]


def _seen_as(evidence: list[Evidence]) -> str:
    parts = [f"{e.text} {e.score:.2f}" for e in evidence if e.kind in ("label", "tag") and e.score][:3]
    spoken = " ".join(e.text for e in evidence if e.kind == "transcript")
    written = " / ".join(e.text for e in evidence if e.kind == "ocr")
    if written:
        parts.append(f"text “{written[:60]}”")
    if spoken:
        parts.append(f"speech “{spoken[:60]}”")
    return ", ".join(parts)


def _bar(score: float, width: int = 30) -> str:
    return "█" * round(score * width)
