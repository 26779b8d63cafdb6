"""Turn one file (or query) into evidence and vectors in the shared text space.

Two stages, so that changing the text encoder re-embeds without re-running perception:
1. **perceive**: models look at the media and say things (labels, OCR lines, transcript segments, tags);
2. **embed**: every piece of evidence worth searching becomes a vector in the text space; label and tag
   distributions go through the label bridge.
Indexing, search queries and the understanding tasks all use this one path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.config import Settings
from polymodal.media.detect import detect
from polymodal.media.errors import MediaError
from polymodal.models.base import get_model
from polymodal.models.text import normalize
from polymodal.space import bridge as bridges

# Evidence kinds. Vectors are made for the searchable ones; labels and tags share one bridge vector.
PASSAGE, LABEL, OCR, TRANSCRIPT, TAG = "passage", "label", "ocr", "transcript", "tag"
EMBEDDED_KINDS = (PASSAGE, OCR, TRANSCRIPT)
BRIDGED_KINDS = (LABEL, TAG)

# ImageNet classes whose presence suggests readable text (menu, website, plaque, ...): OCR is run then.
TEXT_LIKELY_CLASSES = (
    446,
    454,
    458,
    478,
    549,
    624,
    664,
    681,
    692,
    781,
    782,
    851,
    916,
    917,
    918,
    919,
    921,
    922,
)
TEXT_LIKELY_THRESHOLD = 0.15
# AudioSet's broadest classes fire with nearly every sound of their kind ("Animal" for any bark, moo or
# crow) and would make all such sounds alike; they weigh less in a sound's bridge vector. Silence says nothing.
SOUND_TAG_WEIGHTS = {
    "Silence": 0.0,
    "Animal": 0.25,
    "Domestic animals, pets": 0.25,
    "Livestock, farm animals, working animals": 0.25,
    "Wild animals": 0.25,
    "Vehicle": 0.25,
    "Music": 0.25,
    "Inside, small room": 0.25,
    "Outside, rural or natural": 0.25,
    "Outside, urban or manmade": 0.25,
}
# Seconds of voice activity before a recording is sent to the speech recogniser (one spoken digit is ~0.5 s).
MIN_SPEECH_SECONDS = 0.3
# Below this much voice activity the sound tagger must also hear speech: Whisper turns a pig's grunt that
# fooled the VAD into "Thank you very much." (YAMNet Speech: 0.02 on it, >= 0.98 on 10 spoken prompts).
CONFIRM_SPEECH_BELOW_SECONDS = 2.0
SPEECH_TAGS = (
    "Speech",
    "Child speech, kid speaking",
    "Conversation",
    "Narration, monologue",
    "Male speech, man speaking",
    "Female speech, woman speaking",
)
MIN_SPEECH_TAG_SCORE = 0.2


@dataclass
class Evidence:
    kind: str
    text: str
    score: float | None = None
    start: float | None = None
    end: float | None = None
    page: int | None = None
    box: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Vector:
    kind: str  # an evidence kind, or "labels" / "tags" for a bridge vector
    vector: np.ndarray
    evidence: int | None = None  # index into Analysis.evidence


@dataclass
class Analysis:
    modality: str
    format: str
    meta: dict[str, Any] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    vectors: list[Vector] = field(default_factory=list)
    features: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # stage -> model id that produced it
    notes: list[str] = field(default_factory=list)


class Analyzer:
    """Holds the models (loaded lazily, shared per process) and runs the perceive -> embed path."""

    def __init__(self, settings: Settings, aligner: Any = None):
        self.settings = settings
        self._bridges: dict[str, bridges.LabelBridge] = {}
        # A trained aligner (polymodal.space.aligner.Aligner) blended into image / audio bridge vectors.
        self.aligner = aligner

    # --- models, created on first use ------------------------------------------------------------
    def model(self, family: str) -> Any:
        name = {
            "text": self.settings.text_encoder,
            "image": self.settings.image_classifier,
            "ocr": self.settings.ocr,
            "speech": self.settings.speech,
            "sound": self.settings.sound,
            "vad": self.settings.vad,
            "llm": self.settings.llm,
        }[family]
        return get_model(family, name, self.settings)

    def bridge(self, family: str) -> bridges.LabelBridge:
        if family not in self._bridges:
            classifier = self.model(family)
            encoder, cache = self.model("text"), self.settings.cache
            if family == "image":
                bridge = bridges.LabelBridge(
                    encoder, classifier.labels, bridges.IMAGE_TEMPLATES, cache, bridges.IMAGE_SHARPNESS
                )
            else:
                bridge = bridges.LabelBridge(
                    encoder,
                    classifier.labels,
                    bridges.SOUND_TEMPLATES,
                    cache,
                    bridges.SOUND_SHARPNESS,
                    SOUND_TAG_WEIGHTS,
                )
            self._bridges[family] = bridge
        return self._bridges[family]

    def perception_ids(self, modality: str) -> dict[str, str]:
        """The model ids whose output a stored analysis of ``modality`` depends on (besides the encoder)."""
        families = {"text": [], "image": ["image", "ocr"], "audio": ["sound", "vad", "speech"]}[modality]
        return {family: self.model(family).model_id for family in families}

    @property
    def bridge_id(self) -> str:
        # Bumped by hand when the bridge recipe (templates, weights) changes, so stored vectors are redone.
        return f"{self.model('text').model_id}/bridge2-top{self.settings.bridge_top_k}"

    @property
    def encoder_id(self) -> str:
        return self.bridge_id + (f"+{self.aligner.id}" if self.aligner is not None else "")

    def embedding_id(self, modality: str) -> str:
        """What made the vectors of an item of ``modality``: the aligner counts only where it applies."""
        aligned = self.aligner is not None and modality in self.aligner.heads
        return self.encoder_id if aligned else self.bridge_id

    # --- perceive ----------------------------------------------------------------------------------
    def analyze_file(self, path: Path, ocr_mode: str | None = None) -> Analysis:
        """``ocr_mode`` overrides ``Settings.ocr_mode`` for this file (tasks that need any text use "always")."""
        detected = detect(path)
        if detected.modality == "text":
            analysis = self.perceive_text(path, detected.format)
        elif detected.modality == "image":
            analysis = self.perceive_image(path, detected.format, ocr_mode=ocr_mode)
        elif detected.modality == "audio":
            analysis = self.perceive_audio(path, detected.format)
        else:
            raise MediaError(f"{detected.modality} files are not supported yet ({detected.format})")
        if detected.note:
            analysis.notes.append(detected.note)
        self.embed(analysis)
        return analysis

    def perceive_text(self, path: Path, fmt: str) -> Analysis:
        from polymodal.media.text import read_text

        document = read_text(path, fmt)
        if not document.text.strip():
            raise MediaError("no text in the file")
        analysis = Analysis("text", fmt, meta={"title": document.title, "chars": len(document.text)})
        analysis.evidence = [Evidence(PASSAGE, p.text, page=p.page) for p in document.passages]
        return analysis

    def perceive_image(self, source: Path | bytes, fmt: str = "image", ocr_mode: str | None = None) -> Analysis:
        from polymodal.media.image import classifier_input, open_image

        max_pixels = self.settings.max_image_pixels
        image = open_image(source, max_pixels, draft_to=256)
        analysis = Analysis("image", fmt)
        classifier = self.model("image")
        result = classifier.analyze(classifier_input(image)[None])[0]
        analysis.features[classifier.model_id] = result.features
        for label, probability in self.bridge("image").top_labels(result.probabilities, self.settings.bridge_top_k):
            analysis.evidence.append(Evidence(LABEL, label, score=probability))
        analysis.models = {"image": classifier.model_id}
        width, height = image.info["original_size"]
        analysis.meta.update(width=width, height=height)
        if self._wants_ocr(result.probabilities, image, ocr_mode or self.settings.ocr_mode):
            # OCR needs every pixel: decode again at full size if the first decode was a draft.
            full = image if image.size == (width, height) else open_image(source, max_pixels)
            ocr = self.model("ocr")
            analysis.evidence += [Evidence(OCR, line.text, line.confidence, box=line.box) for line in ocr.read(full)]
            analysis.models["ocr"] = ocr.model_id
        return analysis

    def _wants_ocr(self, probabilities: np.ndarray, image: Any, mode: str) -> bool:
        from polymodal.media.image import looks_like_document

        if mode in ("always", "never"):
            return mode == "always"
        text_mass = float(probabilities[list(TEXT_LIKELY_CLASSES)].sum())
        return text_mass >= TEXT_LIKELY_THRESHOLD or looks_like_document(image)

    def perceive_audio(self, source: Path | bytes, fmt: str = "audio", language: str | None = None) -> Analysis:
        from polymodal.media.audio import decode_audio

        audio = decode_audio(source, 16000, self.settings.max_audio_seconds)
        analysis = Analysis("audio", fmt, meta={"duration": round(len(audio) / 16000, 3)})
        tagger = self.model("sound")
        scores = tagger.frame_scores(audio)[1]
        analysis.features[tagger.model_id] = scores.mean(axis=0).astype(np.float32)  # clip-level, for trained heads
        for label, score in tagger.tags_from_scores(scores, top_k=self.settings.bridge_top_k):
            analysis.evidence.append(Evidence(TAG, label, score=score))
        analysis.models = {"sound": tagger.model_id}
        vad = self.model("vad")
        speech_seconds = vad.speech_seconds(audio)
        analysis.meta["speech_seconds"] = round(speech_seconds, 2)
        if _worth_transcribing(speech_seconds, dict(tagger.tags_from_scores(scores, top_k=len(tagger.labels)))):
            speech = self.model("speech")
            transcript = speech.transcribe(audio, language=language)
            analysis.meta.update(language=transcript.language, language_probability=transcript.language_probability)
            analysis.evidence += [
                Evidence(TRANSCRIPT, s.text, s.confidence, start=round(s.start, 2), end=round(s.end, 2))
                for s in transcript.segments
            ]
            analysis.models["speech"] = speech.model_id
        return analysis

    # --- embed -------------------------------------------------------------------------------------
    def embed(self, analysis: Analysis) -> None:
        """(Re)compute ``analysis.vectors`` from its evidence alone."""
        encoder = self.model("text")
        indices = [i for i, e in enumerate(analysis.evidence) if e.kind in EMBEDDED_KINDS]
        matrix = encoder.encode([analysis.evidence[i].text for i in indices])
        analysis.vectors = [Vector(analysis.evidence[i].kind, row, i) for i, row in zip(indices, matrix, strict=True)]
        for kind, family, vector_kind in ((LABEL, "image", "labels"), (TAG, "sound", "tags")):
            weighted = [(e.text, e.score or 0.0) for e in analysis.evidence if e.kind == kind]
            if weighted:
                vector = self.bridge(family).vector(weighted)
                if self.aligner is not None:
                    vector = self.aligner.blend_vector(analysis.modality, analysis.features, vector)
                analysis.vectors.append(Vector(vector_kind, vector))
        analysis.models["text"] = self.embedding_id(analysis.modality)


def media_vector(analysis: Analysis) -> np.ndarray:
    """One vector for an image or sound: its bridge vector, joined by its content (OCR, transcript) if any.

    Search uses it for query media and classification for the item; call :meth:`Analyzer.embed` first.
    """
    bridge = [v.vector for v in analysis.vectors if v.kind in ("labels", "tags")]
    content = [v.vector for v in analysis.vectors if v.kind not in ("labels", "tags")]
    parts = bridge + ([normalize(np.mean(content, axis=0))] if content else [])
    return normalize(np.sum(parts, axis=0))


def _worth_transcribing(speech_seconds: float, tag_scores: dict[str, float]) -> bool:
    if speech_seconds < MIN_SPEECH_SECONDS:
        return False
    heard_speech = max(tag_scores.get(tag, 0.0) for tag in SPEECH_TAGS) >= MIN_SPEECH_TAG_SCORE
    return heard_speech or speech_seconds >= CONFIRM_SPEECH_BELOW_SECONDS
