"""Manifests: which files (or texts) make a dataset, one row per item, as CSV or JSONL.

Columns: ``label`` (fusion training and evaluation), ``text`` (the text itself, or a path to a text file),
``image`` and ``audio`` (paths). Any modality may be empty. Relative paths are relative to the manifest.
Bad rows (a missing file, an empty label, no modality at all, broken JSON) are reported with their line
number and skipped; they never stop the run. Unreadable media are found later, when features are made,
and reported the same way (:class:`Problem`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODALITIES = ("text", "image", "audio")
# Column names accepted for each field (case-insensitive).
ALIASES = {"label": ("label", "class", "category"), "text": ("text", "caption")}
TEXT_FILE_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf"})


class ManifestError(ValueError):
    """The manifest as a whole is unusable (missing, unknown format, no usable column)."""


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


@dataclass
class Row:
    line: int
    label: str | None = None
    text: str | None = None  # the text itself (a text file's content is read in)
    image: Path | None = None
    audio: Path | None = None
    text_file: Path | None = None  # where ``text`` came from, if a file

    def has(self, modality: str) -> bool:
        return getattr(self, modality) is not None

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if self.has(m)]


@dataclass
class Manifest:
    path: Path
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [r.label or "" for r in self.rows]


def read_manifest(path: str | Path, require_label: bool = True) -> Manifest:
    """Parse a CSV (header row) or JSONL manifest; problems are collected, not raised."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}")
    manifest = Manifest(path)
    for line, record in _records(path, manifest.problems):
        row, reason = _row(line, record, path.parent, require_label)
        if row is None:
            manifest.problems.append(Problem(line, reason))
        else:
            manifest.rows.append(row)
    return manifest


def _records(path: Path, problems: list[Problem]) -> list[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return _jsonl(text, problems)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return _csv(text, "\t" if path.suffix.lower() == ".tsv" else ",")
    raise ManifestError(f"{path.name}: a manifest is .csv, .tsv or .jsonl")


def _jsonl(text: str, problems: list[Problem]) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, f"not valid JSON: {exc.msg}"))
            continue
        if isinstance(record, dict):
            records.append((number, record))
        else:
            problems.append(Problem(number, "not a JSON object"))
    return records


def _csv(text: str, delimiter: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames:
        raise ManifestError("the manifest is empty (a CSV needs a header row)")
    known = {name for names in ALIASES.values() for name in names} | set(MODALITIES)
    if not {(name or "").strip().lower() for name in reader.fieldnames} & known:
        shown = ", ".join(repr(str(name)[:40]) for name in reader.fieldnames[:6])
        raise ManifestError(f"no known column in the header ({shown}); use label, text, image, audio")
    # The line a record ends on: its own line, unless a quoted field spans several.
    return [(reader.line_num, record) for record in reader]


def _field(record: dict[str, Any], name: str) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in record.items() if k is not None}
    for alias in ALIASES.get(name, (name,)):
        value = lowered.get(alias)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _row(line: int, record: dict[str, Any], base: Path, require_label: bool) -> tuple[Row | None, str]:
    row = Row(line, label=_field(record, "label"))
    if require_label and not row.label:
        return None, "empty label"
    for modality in ("image", "audio"):
        value = _field(record, modality)
        if value is not None:
            path = _resolve(value, base)
            if not path.is_file():
                return None, f"{modality} file not found: {value}"
            setattr(row, modality, path)
    text = _field(record, "text")
    if text is not None:
        reason = _read_text(row, text, base)
        if reason:
            return None, reason
    if not row.modalities:
        return None, "no modality (text, image and audio are all empty)"
    return row, ""


def _read_text(row: Row, value: str, base: Path) -> str:
    """Fill ``row.text`` from a literal text or a text file; returns a reason when the file is unusable."""
    candidate = _resolve(value, base) if "\n" not in value and len(value) < 1024 else None
    if candidate is None or candidate.suffix.lower() not in TEXT_FILE_SUFFIXES:
        row.text = value
        return ""
    if not candidate.is_file():
        return f"text file not found: {value}"
    from polymodal.media.detect import detect
    from polymodal.media.errors import MediaError
    from polymodal.media.text import read_text

    try:
        detected = detect(candidate)
        if detected.modality != "text":
            return f"text file is {detected.modality}, not text: {value}"
        content = read_text(candidate, detected.format).text.strip()
    except (MediaError, OSError) as exc:
        return f"unreadable text file {value}: {exc}"
    if not content:
        return f"text file is empty: {value}"
    row.text, row.text_file = content, candidate
    return ""


def _resolve(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows (dicts with label / text / image / audio) as CSV or JSONL, by the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
