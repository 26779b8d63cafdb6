"""Understanding single items and bundles from the Python API: thin methods over :mod:`polymodal.tasks`.

:class:`polymodal.Collection` inherits these, so ``Collection().classify("photo.jpg", ["cat", "dog"])`` works
without a store being involved; each method loads only the models its task needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polymodal.errors import InputNotFound

if TYPE_CHECKING:
    from polymodal.analysis import Analyzer


class Understanding:
    analyzer: Analyzer

    def classify(self, source: str | Path | None, labels: Sequence[str], top_k: int | None = None, **options: Any):
        """Zero-shot scores (summing to one) of ``labels`` for an image, a sound or a text (``text=...``)."""
        from polymodal.tasks.classify import classify

        return classify(self.analyzer, _path(source) if source is not None else None, labels, top_k, **options)

    def describe(self, source: str | Path, **options: Any):
        """A caption grounded in the item's evidence (local LLM, a configured provider, or a template);
        ``on_token=callback`` streams it as it is written, ``stop=threading.Event()`` cancels."""
        from polymodal.tasks.describe import describe

        return describe(self.analyzer, _path(source), **options)

    def ask(self, source: str | Path, question: str, **options: Any):
        """An answer from the evidence that answers the question (routed: colours, text, what is said and when,
        ...; else phrased by the LLM and checked), or "I can't tell ...; <what is known>"; with the evidence used.
        ``on_token=callback`` streams it as it is written, ``stop=threading.Event()`` cancels."""
        from polymodal.tasks.ask import ask

        return ask(self.analyzer, _path(source), question, **options)

    def transcribe(self, source: str | Path, language: str | None = None, words: bool = False):
        """Speech segments with times, language and confidence; ``.render("srt"|"vtt"|"json"|"txt")``."""
        from polymodal.tasks.transcribe import transcribe

        return transcribe(self.analyzer, _path(source), language=language, words=words)

    def read(self, source: str | Path | bytes):
        """OCR lines with boxes and confidence, and the layout of a chart or page."""
        from polymodal.tasks.read import read

        return read(self.analyzer, source if isinstance(source, bytes) else _path(source))

    def tag(self, source: str | Path, **options: Any):
        """Sound events with start and end times."""
        from polymodal.tasks.tag import tag

        return tag(self.analyzer, _path(source), **options)

    def analyze(self, sources: Sequence[str | Path], **options: Any):
        """One report on a bundle of files, its summary grounded in their evidence (``summary_points``: what each
        sentence rests on); ``.write("report.html"|".md"|".json")``; ``on_token`` streams the overall summary."""
        from polymodal.tasks.analyze import analyze

        return analyze(self.analyzer, [_path(s) for s in sources], **options)


def _path(source: str | Path) -> Path:
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputNotFound(f"file not found: {source}")
    return path
