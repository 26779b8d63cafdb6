"""Turn one file (or query) into evidence and vectors in the shared text space.

Two stages, so that changing the text encoder re-embeds without re-running perception:
1. **perceive**: models look at the media and say things (labels, OCR lines, transcript segments, tags);
2. **embed**: every piece of evidence worth searching becomes a vector in the text space; label and tag
   distributions go through the label bridge.
Indexing, search queries and the understanding tasks all use this one path. A video is its keyframes (one
per shot, through the image path) and its audio track (through the audio path, block by block), with every
piece of evidence timed, so that search finds moments, not files.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.config import Settings
from polymodal.logs import stage
from polymodal.media.detect import detect
from polymodal.media.errors import MediaError
from polymodal.media.video import shot_at
from polymodal.models.base import get_model, trim_heap
from polymodal.models.sound import PooledScores
from polymodal.models.speech import joined_words
from polymodal.models.text import normalize
from polymodal.space import bridge as bridges

# Evidence kinds. Vectors are made for the searchable ones; labels and tags share one bridge vector. Visual
# attributes (colours, black and white, photo / drawing / screenshot / document) and timed sound events are
# found by their words, and say when and what.
PASSAGE, LABEL, OCR, TRANSCRIPT, TAG = "passage", "label", "ocr", "transcript", "tag"
VISUAL, EVENT = "visual", "event"
# faces: how many people a picture shows; person: their names (polymodal/perceivers/faces.py, polymodal/people.py)
EMBEDDED_KINDS = (PASSAGE, OCR, TRANSCRIPT, "faces", "person")
BRIDGED_KINDS = (LABEL, TAG)
OCR_BLOCK_WORDS = 24  # OCR lines are embedded in blocks of about this many words (see embedding_units)

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
# A recording's sound events (a class scoring at least this for at least MIN_EVENT_SECONDS): the moments a
# search for a sound plays from. At most MAX_EVENTS per recording, the strongest.
MIN_EVENT_SCORE = 0.3
MIN_EVENT_SECONDS = 0.5
MAX_EVENTS = 40
# Recipes of the evidence drawn from a model's output (see Analyzer.stage_id): images got visual attributes and
# an OCR floor, then cut-outs shown whole (polymodal.media.image); sounds got timed events.
PERCEPTION_RECIPES = {"image": "+visual2+cutouts", "sound": "+events1"}
# OCR reads an image reduced to this short side at most (a 100 MP scan would need ~1 GB at full size; the
# reader scales its input down to a few thousand pixels anyway).
OCR_SHORT_SIDE = 1500  # (reduced by whole factors: the short side stays at least twice this)
# OCR lines below this confidence, or that are not words ("the o sr e t te re s the"), are not evidence.
MIN_OCR_CONFIDENCE = 0.7
SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")
MAX_SENTENCE_GAP = 1.0  # seconds between two words that end a sentence of a video's transcript
# A video's track is decoded once per 30 s window: repeated lyrics or a looped clip make Whisper's temperature
# fallback decode every window six times (9x the time on a looped 10 min clip). A sentence that repeats itself
# (a decoding loop: "thank you thank you ...") is dropped instead, as the fallback would have redone it.
VIDEO_SPEECH_TEMPERATURE = 0.0
MAX_SENTENCE_COMPRESSION = 2.4  # Whisper's own threshold, zlib ratio of the text
# A video's sound track is tagged in windows of this many seconds: a few tags (at least MIN_WINDOW_TAG_SCORE)
# per window, each window one group with its own bridge vector, so a search for a sound finds its moment.
SOUND_WINDOW_SECONDS = 5.0
MIN_WINDOW_TAG_SCORE = 0.15
MAX_WINDOW_TAGS = 5
# Recordings and video tracks are heard in windows of this much audio, cut in pauses: memory holds one window
# (Whisper's features of a window take ~60 MB a minute) whatever the length; see polymodal.tasks.transcribe.
AUDIO_WINDOW_SECONDS = 120.0
# A video keyframe whose 64x36 grey differs from the last one read by less than this (of 255) is not read again.
SAME_FRAME_DIFFERENCE = 4.0
VideoProgress = Callable[[float, float], None]  # (seconds read, duration)
# A decoded image waiting for its classifier batch is kept for OCR below this size (12 MB of RGB at 4 MP).
KEEP_DECODED_PIXELS = 4_000_000


@dataclass
class Evidence:
    """One thing a model said. ``start``/``end``: seconds into a recording or video; ``page``: a document's
    page, or the shot of a video the evidence belongs to (its thumbnail); ``box``: an OCR line's four corners,
    or the [start, end] of each word of a video's transcript sentence. A video's labels are grouped by shot:
    the labels of one shot share its ``start``/``end``."""

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
    # Index into Analysis.evidence; for a bridge vector of a video shot or sound window, its first label / tag.
    evidence: int | None = None


@dataclass
class PreparedAudio:
    """A recording decoded to 16 kHz mono (:meth:`Analyzer.prepare_audio`), waiting for the sound models."""

    source: Path | bytes
    fmt: str
    audio: np.ndarray
    notes: list[str] = field(default_factory=list)  # what decoding noticed (truncated, damaged)

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000


@dataclass
class PreparedImage:
    """An image decoded for the classifier (:meth:`Analyzer.prepare_image`), waiting for its batch."""

    source: Path | bytes
    fmt: str
    tensor: np.ndarray  # (3, 224, 224) float32
    width: int  # original size, after EXIF rotation
    height: int
    document: bool  # the cheap "flat and grey: a scan" prior of the OCR gate
    image: Any = None  # the decoded full image when small (OCR reuses it), else None
    visual: list[Any] = field(default_factory=list)  # polymodal.perceivers.visual.Attribute


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
    thumbnails: list[bytes] = field(default_factory=list)  # a video's JPEG per shot; the store keeps them as files


class Analyzer:
    """Holds the models (loaded lazily, shared per process) and runs the perceive -> embed path."""

    def __init__(self, settings: Settings, aligner: Any = None):
        self.settings = settings
        self._bridges: dict[str, bridges.LabelBridge] = {}
        self._bridges_lock = threading.Lock()
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
        """The label bridge of the image classifier or sound tagger (one per analyzer, shared by its threads)."""
        with self._bridges_lock:
            if family not in self._bridges:
                self._bridges[family] = self._new_bridge(family)
            return self._bridges[family]

    def _new_bridge(self, family: str) -> bridges.LabelBridge:
        from polymodal.space import vocabulary

        labels, encoder, cache = self.model(family).labels, self.model("text"), self.settings.cache
        if family == "image":
            phrasings = vocabulary.class_phrasings(labels, cache)  # names, synonyms, hypernyms, descriptions
            return bridges.LabelBridge(
                encoder, labels, bridges.IMAGE_TEMPLATES, cache, bridges.IMAGE_SHARPNESS, phrasings=phrasings
            )
        return bridges.LabelBridge(
            encoder, labels, bridges.SOUND_TEMPLATES, cache, bridges.SOUND_SHARPNESS, SOUND_TAG_WEIGHTS
        )

    def perception_ids(self, modality: str) -> dict[str, str]:
        """The model ids whose output a stored analysis of ``modality`` depends on (besides the encoder)."""
        families = {
            "text": [],
            "image": ["image", "ocr"],
            "audio": ["sound", "vad", "speech"],
            "video": ["image", "ocr", "sound", "vad", "speech"],
        }[modality]
        return {family: self.stage_id(family) for family in families}

    def stage_id(self, family: str) -> str:
        """The id recorded for a perception stage: the model's, and for images and sounds the recipe of the
        evidence drawn from it (bumped by hand when that changes, so that stored items are perceived again)."""
        return self.model(family).model_id + PERCEPTION_RECIPES.get(family, "")

    @property
    def bridge_id(self) -> str:
        # Bumped by hand when the bridge recipe (weights, phrasings) changes, so stored vectors are redone; the
        # image labels' phrasings differ with WordNet present or not (cheap to tell: no table is read).
        from polymodal.space import vocabulary

        phrasings = f"vocab{vocabulary.TABLE_VERSION}{'-wn' if vocabulary.WORDNET_DIR.is_dir() else ''}"
        return f"{self.model('text').model_id}/bridge3-{phrasings}-top{self.settings.bridge_top_k}-ocrblocks"

    @property
    def encoder_id(self) -> str:
        return self.bridge_id + (f"+{self.aligner.id}" if self.aligner is not None else "")

    def embedding_id(self, modality: str) -> str:
        """What made the vectors of an item of ``modality``: the aligner counts only where it applies."""
        aligned = self.aligner is not None and modality in self.aligner.heads
        return self.encoder_id if aligned else self.bridge_id

    # --- perceive ----------------------------------------------------------------------------------
    def analyze_file(self, path: Path, ocr_mode: str | None = None, progress: VideoProgress | None = None) -> Analysis:
        """``ocr_mode`` overrides ``Settings.ocr_mode`` for this file (tasks that need any text use "always");
        ``progress`` is told how far a video has been read."""
        detected = detect(path)
        if detected.modality == "text":
            analysis = self.perceive_text(path, detected.format)
        elif detected.modality == "image":
            analysis = self.perceive_image(path, detected.format, ocr_mode=ocr_mode)
        elif detected.modality == "audio":
            analysis = self.perceive_audio(path, detected.format)
        elif detected.modality == "video":
            analysis = self.perceive_video(path, detected.format, ocr_mode=ocr_mode, progress=progress)
        else:
            raise MediaError(f"{detected.modality} files are not supported yet ({detected.format})")
        if detected.note:
            analysis.notes.append(detected.note)
        self.embed(analysis)
        return analysis

    @stage("read text")
    def perceive_text(self, path: Path, fmt: str) -> Analysis:
        from polymodal.media.text import read_text

        document = read_text(path, fmt)
        if not document.text.strip():
            raise MediaError("no text in the file")
        analysis = Analysis("text", fmt, meta={"title": document.title, "chars": len(document.text)})
        analysis.evidence = [Evidence(PASSAGE, p.text, page=p.page) for p in document.passages]
        analysis.notes += document.notes
        return analysis

    def perceive_image(self, source: Path | bytes, fmt: str = "image", ocr_mode: str | None = None) -> Analysis:
        return self.finish_images([self.prepare_image(source, fmt)], ocr_mode)[0]

    @stage("decode image")
    def prepare_image(self, source: Path | bytes, fmt: str = "image") -> PreparedImage:
        """Decode an image (a draft for JPEGs) and make the classifier's input. No model runs here and nothing is
        shared, so the indexer calls it in decoding threads while the classifier works on the previous batch."""
        from polymodal.media.image import classifier_input, looks_like_document, open_image
        from polymodal.perceivers import visual

        image = open_image(source, self.settings.max_image_pixels, draft_to=256)
        width, height = image.info["original_size"]
        full_size = image.size == (width, height)
        return PreparedImage(
            source,
            fmt,
            classifier_input(image),
            width,
            height,
            looks_like_document(image),
            # Kept for OCR only when it is the full image and small; otherwise OCR decodes the file again.
            image if full_size and width * height <= KEEP_DECODED_PIXELS else None,
            visual.perceive(image),
        )

    @stage("classify images (and OCR)")
    def finish_images(self, prepared: list[PreparedImage], ocr_mode: str | None = None) -> list[Analysis]:
        """Classify prepared images in batches, then each one's labels and, where the OCR gate sees text, its text
        lines: what :meth:`perceive_image` does for one image."""
        if not prepared:
            return []
        classifier = self.model("image")
        results = classifier.analyze(np.stack([p.tensor for p in prepared]))
        return [self._finish_image(p, result, ocr_mode) for p, result in zip(prepared, results, strict=True)]

    def _finish_image(self, prepared: PreparedImage, result: Any, ocr_mode: str | None) -> Analysis:
        from polymodal.media.image import open_image

        analysis = Analysis("image", prepared.fmt)

        def read_text() -> list[Any]:  # OCR needs every pixel: decode again at full size if that was a draft
            image = prepared.image or open_image(prepared.source, self.settings.max_image_pixels, OCR_SHORT_SIDE)
            return self.model("ocr").read(image, probe_first=self._probes_first(ocr_mode))

        features = self._labels_and_text(analysis, result, lambda: prepared.document, read_text, ocr_mode)
        analysis.evidence += visual_evidence(prepared.visual)
        analysis.features[self.model("image").model_id] = features
        analysis.meta.update(width=prepared.width, height=prepared.height)
        return analysis

    def _look(
        self,
        analysis: Analysis,
        image: Any,
        read_text: Callable[[], list[Any]],
        ocr_mode: str | None,
        document_prior: bool = True,
        **where: Any,
    ) -> np.ndarray:
        """Labels of one picture (a video's keyframe), and its text lines (``read_text``) where the OCR gate sees
        text; ``where`` (start, end, page) goes on every piece of evidence. Returns the features."""
        from polymodal.media.image import classifier_input, looks_like_document

        result = self.model("image").analyze(classifier_input(image)[None])[0]
        document = (lambda: looks_like_document(image)) if document_prior else (lambda: False)
        return self._labels_and_text(analysis, result, document, read_text, ocr_mode, **where)

    def _labels_and_text(
        self,
        analysis: Analysis,
        result: Any,
        document: Callable[[], bool],
        read_text: Callable[[], list[Any]],
        ocr_mode: str | None,
        **where: Any,
    ) -> np.ndarray:
        """The classifier's ``result`` as label evidence, and OCR lines where the gate sees text."""
        for label, probability in self.bridge("image").top_labels(result.probabilities, self.settings.bridge_top_k):
            analysis.evidence.append(Evidence(LABEL, label, score=probability, **where))
        analysis.models["image"] = self.stage_id("image")
        if self._wants_ocr(result.probabilities, ocr_mode or self.settings.ocr_mode, document):
            lines = [line for line in read_text() if readable(line.text, line.confidence)]
            analysis.evidence += [Evidence(OCR, line.text, line.confidence, box=line.box, **where) for line in lines]
            analysis.models["ocr"] = self.model("ocr").model_id
        return result.features

    def _wants_ocr(self, probabilities: np.ndarray, mode: str, document: Callable[[], bool]) -> bool:
        """OCR runs where labels suggest text (menu, website, plaque, ...) or ``document()`` (flat, grey: a scan);
        in "auto" mode the OCR model then probes for text boxes before reading (:meth:`_probes_first`)."""
        if mode in ("always", "never"):
            return mode == "always"
        text_mass = float(probabilities[list(TEXT_LIKELY_CLASSES)].sum())
        return text_mass >= TEXT_LIKELY_THRESHOLD or document()

    def _probes_first(self, ocr_mode: str | None) -> bool:
        return (ocr_mode or self.settings.ocr_mode) == "auto"

    def perceive_audio(self, source: Path | bytes, fmt: str = "audio", language: str | None = None) -> Analysis:
        """Tags, voice activity and, where there is speech, the transcript of a recording, heard window by window
        (``AUDIO_WINDOW_SECONDS``, cut in pauses): memory holds one window, however long the recording."""
        from polymodal.tasks.transcribe import speech_windows

        tagger = self.model("sound")
        analysis = Analysis("audio", fmt, meta={"duration": 0.0})
        pooled, samples, events = PooledScores(len(tagger.labels)), 0, []
        for offset, audio in speech_windows(self, source, AUDIO_WINDOW_SECONDS, analysis.notes):  # type: ignore[arg-type]
            starts, scores = self._listen(analysis, audio, offset / 16000, language)
            pooled.add(scores)
            events += tagger.events_from_scores(starts, scores, (offset + audio.size) / 16000, MIN_EVENT_SCORE)
            samples = offset + audio.size
            trim_heap()
        analysis.meta["duration"] = round(samples / 16000, 3)
        analysis.evidence += event_evidence(events)
        analysis.features[tagger.model_id] = pooled.mean  # for trained heads
        tags = tagger.tags_from_pooled(pooled.best, pooled.mean, top_k=self.settings.bridge_top_k)
        analysis.evidence[:0] = [Evidence(TAG, label, score=score) for label, score in tags]  # tags first, as before
        return analysis

    @stage("decode audio")
    def prepare_audio(self, source: Path | bytes, fmt: str = "audio") -> PreparedAudio:
        """Decode a recording to 16 kHz mono (no model: the indexer calls this in its decoding threads)."""
        from polymodal.media.audio import decode_audio

        notes: list[str] = []
        audio = decode_audio(source, 16000, self.settings.max_audio_seconds, notes=notes)
        return PreparedAudio(source, fmt, audio, notes)

    @stage("tag and transcribe audio")
    def finish_audio(self, prepared: list[PreparedAudio], language: str | None = None) -> list[Analysis]:
        """Tags, voice activity and, where there is speech, transcripts of decoded recordings; short ones with
        speech share Whisper windows (:meth:`WhisperBase.transcribe_many`)."""
        tagger = self.model("sound")
        analyses, to_transcribe = [], []
        for item in prepared:
            analysis = Analysis("audio", item.fmt, meta={"duration": round(item.seconds, 3)}, notes=list(item.notes))
            starts, scores, speech = self._hear(analysis, item.audio)
            analysis.features[tagger.model_id] = scores.mean(axis=0).astype(np.float32)  # for trained heads
            analysis.evidence = [
                Evidence(TAG, label, score=score)
                for label, score in tagger.tags_from_scores(scores, top_k=self.settings.bridge_top_k)
            ]
            events = tagger.events_from_scores(starts, scores, item.seconds, MIN_EVENT_SCORE)
            analysis.evidence += event_evidence(events)
            if speech:
                to_transcribe.append((analysis, item.audio))
            analyses.append(analysis)
        if to_transcribe:
            speech = self.model("speech")
            transcripts = speech.transcribe_many([audio for _, audio in to_transcribe], language)
            for (analysis, _), transcript in zip(to_transcribe, transcripts, strict=True):
                self._add_transcript(analysis, transcript, 0.0, None)
        return analyses

    def _hear(self, analysis: Analysis, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """The sound tagger's patch start times and scores, and whether voice activity (noted in ``meta``) and
        the tags agree that ``audio`` is worth transcribing."""
        tagger = self.model("sound")
        starts, scores = tagger.frame_scores(audio)
        analysis.models["sound"] = self.stage_id("sound")
        speech_seconds = self.model("vad").speech_seconds(audio)
        analysis.meta["speech_seconds"] = round(analysis.meta.get("speech_seconds", 0.0) + speech_seconds, 2)
        tags = dict(tagger.tags_from_scores(scores, top_k=len(tagger.labels)))
        return starts, scores, _worth_transcribing(speech_seconds, tags)

    def _listen(
        self, analysis: Analysis, audio: np.ndarray, offset: float = 0.0, language: str | None = None, shots: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voice activity and, where there is speech, a transcript of one stretch of audio (a recording, or a
        block of a video's track starting ``offset`` seconds in); returns the sound tagger's patch start times
        (from ``offset``) and scores, which the caller turns into tags. A video's transcript (``shots`` given)
        is cut into sentences by word times, so that a search finds the moment a thing is said."""
        starts, scores, speech = self._hear(analysis, audio)
        if speech:
            self._transcribe(analysis, audio, offset, language, shots)
        return starts + offset, scores

    def _transcribe(
        self, analysis: Analysis, audio: np.ndarray, offset: float, language: str | None, shots: Any
    ) -> None:
        """Transcript segments (a video's: sentences, with word times in ``box``) as evidence, ``offset`` seconds on."""
        by_sentence = shots is not None
        options = {"word_timestamps": True, "temperature": VIDEO_SPEECH_TEMPERATURE} if by_sentence else {}
        language = language or analysis.meta.get("language")
        self._add_transcript(analysis, self.model("speech").transcribe(audio, language, **options), offset, shots)

    def _add_transcript(self, analysis: Analysis, transcript: Any, offset: float, shots: Any) -> None:
        """Transcript segments as evidence, ``offset`` seconds on (a video's: sentences, on their shots)."""
        if "language" not in analysis.meta:
            analysis.meta.update(language=transcript.language, language_probability=transcript.language_probability)
        segments = transcript.segments
        if shots is not None:
            segments = [s for s in sentences(segments) if not _repetitive(s.text)]
        for s in segments:
            start, end = round(s.start + offset, 2), round(s.end + offset, 2)
            page = None if shots is None else shot_at(shots, start)
            words = [[round(w.start + offset, 2), round(w.end + offset, 2)] for w in s.words] or None
            where = {"start": start, "end": end, "page": page, "box": words}
            analysis.evidence.append(Evidence(TRANSCRIPT, s.text, s.confidence, **where))
        analysis.models["speech"] = self.model("speech").model_id

    @stage("video")
    def perceive_video(
        self,
        path: Path,
        fmt: str = "video",
        ocr_mode: str | None = None,
        language: str | None = None,
        progress: VideoProgress | None = None,
    ) -> Analysis:
        """Shots (one keyframe each, through the image path) and the audio track (through the audio path, in
        blocks); everything timed. Memory holds one shot's keyframe candidates and one block of audio."""
        from polymodal.media.video import VideoReader, thumbnail_jpeg

        reader = VideoReader(path, self.settings.threads, self.settings.max_audio_seconds)
        analysis = Analysis("video", fmt, meta=reader.info.to_meta())
        features: list[np.ndarray] = []
        shots: list[tuple[float, float]] = []
        read_text = self._frame_text_reader(path, self._probes_first(ocr_mode))
        for shot in reader.shots(progress):
            where = {"start": shot.start, "end": shot.end, "page": shot.index}
            # The flat-and-grey document prior fires on washed-out footage (3 of the 6 shots of bikes.mp4, none
            # with text), at 1-2 s of OCR each: keyframes are read when the classifier sees a screen, sign, ...
            look = self._look(analysis, shot.image, lambda s=shot: read_text(s), ocr_mode, False, **where)
            features.append(look)
            analysis.thumbnails.append(thumbnail_jpeg(shot.image))
            shots.append((shot.start, shot.end))
        analysis.notes += reader.notes
        duration = reader.decoded_seconds
        analysis.meta.update(duration=round(duration, 3), shots=len(shots), audio=reader.info.has_audio)
        classifier_id = self.model("image").model_id
        analysis.features[classifier_id] = np.mean(features, axis=0).astype(np.float32)
        analysis.features[shot_features_key(classifier_id)] = np.stack(features).astype(np.float32)
        if reader.info.has_audio:
            self._hear_track(analysis, path, shots, duration, language)
        if progress:
            progress(duration, duration)
        return analysis

    def _frame_text_reader(self, path: Path, probe_first: bool) -> Callable[[Any], list[Any]]:
        """OCR of a shot's keyframe at full size (decoded again by seeking); a keyframe that looks like the last
        one read (a slide or screen held over several shots) gets that one's lines without OCR."""
        from polymodal.media.video import frame_at

        last: dict[str, Any] = {}

        def read(shot: Any) -> list[Any]:
            small = np.asarray(shot.image.convert("L").resize((64, 36)), np.float32)
            if "small" in last and float(np.abs(small - last["small"]).mean()) < SAME_FRAME_DIFFERENCE:
                return last["lines"]
            lines = self.model("ocr").read(frame_at(path, shot.time, self.settings.threads), probe_first=probe_first)
            last.update(small=small, lines=lines)
            return lines

        return read

    def _hear_track(
        self, analysis: Analysis, path: Path, shots: list[tuple[float, float]], duration: float, language: str | None
    ) -> None:
        """The audio track in blocks cut in pauses (``speech_windows``): transcript segments and windowed tags."""
        from polymodal.tasks.transcribe import speech_windows

        tagger = self.model("sound")
        windows: dict[int, np.ndarray] = {}  # window number -> best score per class
        total, patches = np.zeros(len(tagger.labels), np.float64), 0
        try:
            for offset, audio in speech_windows(self, path, AUDIO_WINDOW_SECONDS, analysis.notes):
                starts, scores = self._listen(analysis, audio, offset / 16000, language, shots)
                for number, score in zip((starts // SOUND_WINDOW_SECONDS).astype(int), scores, strict=True):
                    windows[number] = np.maximum(windows[number], score) if number in windows else score
                total, patches = total + scores.sum(axis=0), patches + len(scores)
                trim_heap()
        except MediaError as exc:
            analysis.notes.append(f"the audio track could not be read: {exc}")
        if patches:
            analysis.features[tagger.model_id] = (total / patches).astype(np.float32)
        for number in sorted(windows):
            start = number * SOUND_WINDOW_SECONDS
            span = {"start": round(start, 2), "end": round(min(start + SOUND_WINDOW_SECONDS, duration), 2)}
            analysis.evidence += [
                Evidence(TAG, label, score=score, page=shot_at(shots, start), **span)
                for label, score in tagger.tags_from_scores(windows[number][None], MAX_WINDOW_TAGS)
                if score >= MIN_WINDOW_TAG_SCORE and SOUND_TAG_WEIGHTS.get(label, 1.0) > 0
            ]

    # --- embed -------------------------------------------------------------------------------------
    @stage("embed")
    def embed(self, analysis: Analysis) -> None:
        """(Re)compute ``analysis.vectors`` from its evidence alone."""
        encoder = self.model("text")
        units = embedding_units(analysis.evidence)
        matrix = encoder.encode([text for _, text in units])
        analysis.vectors = [
            Vector(analysis.evidence[i].kind, row, i) for (i, _), row in zip(units, matrix, strict=True)
        ]
        for kind, family, vector_kind in ((LABEL, "image", "labels"), (TAG, "sound", "tags")):
            for first, weighted in bridge_groups(analysis.evidence, kind):
                vector = self.bridge(family).vector(weighted)
                if self.aligner is not None:
                    vector = self.aligner.blend_vector(analysis.modality, analysis.features, vector)
                analysis.vectors.append(Vector(vector_kind, vector, first))
        analysis.models["text"] = self.embedding_id(analysis.modality)


def embedding_units(evidence: list[Evidence]) -> list[tuple[int, str]]:
    """The texts that get a vector each, as (index of the first evidence, text): every passage, sentence, face
    count and name; an image's (or a video shot's) OCR lines joined into blocks of about OCR_BLOCK_WORDS words,
    each line once per item. One short line ("Apply", "Normal") alone lands near every query, and a screen
    recording repeats the same lines in every shot."""
    units: list[tuple[int, str]] = []
    blocks: dict[tuple[float | None, float | None], list[tuple[int, str]]] = {}
    seen: set[str] = set()
    for index, e in enumerate(evidence):
        if e.kind == OCR:
            if e.text not in seen:
                seen.add(e.text)
                blocks.setdefault((e.start, e.end), []).append((index, e.text))
        elif e.kind in EMBEDDED_KINDS:
            units.append((index, e.text))
    for lines in blocks.values():
        block: list[tuple[int, str]] = []
        for index, text in lines:
            block.append((index, text))
            if sum(len(t.split()) for _, t in block) >= OCR_BLOCK_WORDS:
                units.append((block[0][0], "\n".join(t for _, t in block)))
                block = []
        if block:
            units.append((block[0][0], "\n".join(t for _, t in block)))
    return units


def bridge_groups(evidence: list[Evidence], kind: str) -> list[tuple[int | None, list[tuple[str, float]]]]:
    """Labels (or tags) that make one bridge vector each, as (index of the group's first evidence, [(label,
    score)]): all of an image's or a recording's (untimed: index None), one group per shot or sound window of
    a video (the evidence sharing a start and end)."""
    groups: dict[tuple[float | None, float | None], tuple[int | None, list[tuple[str, float]]]] = {}
    for index, e in enumerate(evidence):
        if e.kind == kind:
            span = (e.start, e.end)
            if span not in groups:
                groups[span] = (None if e.start is None else index, [])
            groups[span][1].append((e.text, e.score or 0.0))
    return list(groups.values())


def shot_features_key(classifier_id: str) -> str:
    """Where a video's per-shot classifier features are kept (one row per shot), for finding the shot that
    looks most like a query image: the label bridge says what a shot shows, these how it looks."""
    return f"{classifier_id}/shots"


def media_vector(analysis: Analysis) -> np.ndarray:
    """One vector for an image or sound: its bridge vector, joined by its content (OCR, transcript) if any.

    Search uses it for query media and classification for the item; call :meth:`Analyzer.embed` first.
    """
    bridge = [v.vector for v in analysis.vectors if v.kind in ("labels", "tags")]
    content = [v.vector for v in analysis.vectors if v.kind not in ("labels", "tags")]
    parts = bridge + ([normalize(np.mean(content, axis=0))] if content else [])
    return normalize(np.sum(parts, axis=0))


def sentences(segments: list[Any]) -> list[Any]:
    """Speech segments (with word times) cut after each sentence's last word and at pauses longer than
    ``MAX_SENTENCE_GAP``: Whisper's segments run 5-10 s, a sentence starts within a word of when it is said."""
    from dataclasses import replace

    out = []
    for segment in segments:
        if not segment.words:
            out.append(segment)
            continue
        for words in _sentence_words(segment.words):
            out.append(replace(segment, start=words[0].start, end=words[-1].end, text=joined_words(words), words=words))
    return out


def _sentence_words(words: list[Any]) -> list[list[Any]]:
    groups: list[list[Any]] = []
    current: list[Any] = []
    for word in words:
        if current and word.start - current[-1].end > MAX_SENTENCE_GAP:
            groups.append(current)
            current = []
        current.append(word)
        if word.text.endswith(SENTENCE_ENDS):
            groups.append(current)
            current = []
    return groups + ([current] if current else [])


def _repetitive(text: str) -> bool:
    import zlib

    data = text.encode("utf-8")
    return len(data) > 40 and len(data) / len(zlib.compress(data)) > MAX_SENTENCE_COMPRESSION


def _worth_transcribing(speech_seconds: float, tag_scores: dict[str, float]) -> bool:
    if speech_seconds < MIN_SPEECH_SECONDS:
        return False
    heard_speech = max(tag_scores.get(tag, 0.0) for tag in SPEECH_TAGS) >= MIN_SPEECH_TAG_SCORE
    return heard_speech or speech_seconds >= CONFIRM_SPEECH_BELOW_SECONDS


def visual_evidence(attributes: list[Any]) -> list[Evidence]:
    """Visual attributes as evidence, in English and Chinese ("mostly red, with white" / "主要是红色，还有白色")."""
    from polymodal.perceivers import visual

    return [Evidence(VISUAL, text) for lang in ("en", "zh") for text in visual.evidence_texts(attributes, lang)]


def event_evidence(events: list[Any]) -> list[Evidence]:
    """The strongest sound events (``MAX_EVENTS``) as timed evidence, in time order; silence and the broadest
    classes ("Animal") say nothing of a moment."""
    wanted = [
        e for e in events if e.end - e.start >= MIN_EVENT_SECONDS and SOUND_TAG_WEIGHTS.get(e.label, 1.0) >= 1.0
    ]
    strongest = sorted(wanted, key=lambda e: -e.score)[:MAX_EVENTS]
    return [
        Evidence(EVENT, e.label, round(e.score, 3), round(e.start, 2), round(e.end, 2))
        for e in sorted(strongest, key=lambda e: e.start)
    ]


_WORD = re.compile(r"\w+", re.UNICODE)


def readable(text: str, confidence: float | None) -> bool:
    """Whether an OCR line is worth keeping: confident enough, and words rather than scattered letters (a line
    of three or more Latin words, most of them one or two letters long, is not: "the o sr e t te re s the")."""
    if confidence is not None and confidence < MIN_OCR_CONFIDENCE:
        return False
    latin = [w for w in _WORD.findall(text) if w.isascii() and not w.isdigit()]
    return len(latin) < 3 or sum(len(w) <= 2 for w in latin) * 2 <= len(latin)
