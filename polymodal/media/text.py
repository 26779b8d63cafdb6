"""Read documents (plain text, Markdown, HTML, PDF) into text and passages with character offsets.

Passages are what gets embedded and shown as search hits: paragraphs first, then sentences (English and
Chinese punctuation), never cut inside a word. ``segment_for_search`` spaces out Chinese words so that a
``unicode61`` full-text index can find them.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

from polymodal.media.errors import MediaError

MAX_PASSAGE_CHARS = 600


@dataclass(frozen=True)
class Passage:
    text: str
    start: int  # offsets into Document.text: text == document.text[start:end]
    end: int
    page: int | None = None  # 1-based page of a PDF


@dataclass
class Document:
    title: str | None
    text: str
    passages: list[Passage] = field(default_factory=list)


def read_text(path: Path, fmt: str) -> Document:
    """Read a document of format ``fmt`` ("txt", "md", "html" or "pdf", as ``detect`` says)."""
    path = Path(path)
    if fmt == "pdf":
        return _read_pdf(path)
    raw = _read_bytes(path)
    if fmt == "html":
        return _html_document(decode_bytes(raw, declared=_declared_charset(raw)) or "")
    if fmt not in ("txt", "md"):
        raise MediaError(f"not a text format: {fmt}")
    text = normalise_text(decode_bytes(raw) or "")
    title = _markdown_title(text) if fmt == "md" else None
    return Document(title, text, split_passages(text))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError as exc:
        raise MediaError("is a directory, not a file") from exc
    except PermissionError as exc:
        raise MediaError("permission denied: the file cannot be read") from exc
    except OSError as exc:
        raise MediaError(f"could not read the file: {exc.strerror or exc}") from exc


# --- encodings ----------------------------------------------------------------------------------------


def decode_bytes(
    data: bytes, *, strict: bool = False, partial: bool = False, declared: str | None = None
) -> str | None:
    """Decode text: UTF-8 (BOM or not), UTF-16 with BOM, a declared charset, GB18030, else Latin-1.

    ``strict`` returns None instead of falling back to Latin-1, and refuses data with NUL bytes
    (binary); ``partial`` says ``data`` was cut from a longer file, so a split last character is fine.
    """
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            text = _decode(data[len(bom) :], encoding, partial)
            if text is None and not strict:
                text = data[len(bom) :].decode(encoding, errors="replace")
            return text
    if strict and b"\x00" in data:
        return None
    candidates = ["utf-8", declared] if declared else ["utf-8"]
    if _mostly_paired_high_bytes(data):
        candidates.append("gb18030")
    candidates.append("cp1252")
    for encoding in candidates:
        text = _decode(data, encoding, partial)
        if text is not None:
            return text
    return None if strict else data.decode("latin-1")


def _decode(data: bytes, encoding: str, partial: bool) -> str | None:
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        return decoder.decode(data, final=not partial)
    except (UnicodeDecodeError, LookupError):
        return None


def _mostly_paired_high_bytes(data: bytes) -> bool:
    """Chinese double-byte text pairs its high bytes; Western single-byte text (café) leaves them alone."""
    high = [i for i, b in enumerate(data) if b >= 0x80]
    if not high:
        return True
    high_set = set(high)
    paired = sum(1 for i in high if i + 1 in high_set or i - 1 in high_set)
    return paired >= 0.6 * len(high)


def _declared_charset(raw: bytes) -> str | None:
    match = re.search(rb"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", raw[:4096], re.IGNORECASE)
    if not match:
        return None
    name = match.group(1).decode("ascii").lower()
    try:
        codecs.lookup(name)
    except LookupError:
        return None
    return "gb18030" if name in ("gb2312", "gbk") else name


def normalise_text(text: str) -> str:
    """Drop a BOM and NUL characters; use ``\\n`` line ends."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


# --- Markdown and HTML --------------------------------------------------------------------------------

_HEADING = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(\S.*?)[ \t#]*$", re.MULTILINE)


def _markdown_title(text: str) -> str | None:
    headings = [(len(m.group(1)), m.group(2).strip()) for m in _HEADING.finditer(text)]
    if not headings:
        return None
    return min(headings, key=lambda h: h[0])[1]


_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "section",
        "summary",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "ul",
    ]
)
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object"})
_PRE_NEWLINE, _PRE_SPACE = "\x01", "\x02"  # stand for whitespace inside <pre> while the rest is collapsed


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self.first_h1: list[str] = []
        self._skip = 0
        self._pre = 0
        self._in_title = False
        self._h1 = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "pre":
            self._pre += 1
            self.parts.append("\n\n")
        elif re.fullmatch(r"h[1-6]", tag):
            self._h1 += tag == "h1"
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")  # a heading starts a new passage
        elif tag == "tr":
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self.parts.append("\n\n")
        elif re.fullmatch(r"h[1-6]", tag):
            self._h1 = max(0, self._h1 - (tag == "h1"))
            self.parts.append("\n\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title_parts.append(data)
            return
        if self._h1 and not self.title_parts:
            self.first_h1.append(data)
        if self._pre:
            self.parts.append(data.replace("\n", _PRE_NEWLINE).replace(" ", _PRE_SPACE))
        else:
            self.parts.append(re.sub(r"\s+", " ", data))


def _html_document(source: str) -> Document:
    parser = _HTMLText()
    parser.feed(normalise_text(source))
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip().replace(_PRE_NEWLINE, "\n").replace(_PRE_SPACE, " ")
    title = " ".join("".join(parser.title_parts or parser.first_h1).split()) or None
    return Document(title, text, split_passages(text))


# --- PDF ----------------------------------------------------------------------------------------------


def _read_pdf(path: Path) -> Document:
    reader = _open_pdf(path)
    pages = _pdf_pages(reader)
    if not any(page.strip() for page in pages):
        raise MediaError("no text layer (scanned PDF?)")
    text_parts: list[str] = []
    passages: list[Passage] = []
    offset = 0
    for number, page_text in enumerate(pages, start=1):
        if not page_text.strip():
            continue
        if text_parts:
            text_parts.append("\n\n")
            offset += 2
        for p in split_passages(page_text):
            passages.append(Passage(p.text, p.start + offset, p.end + offset, number))
        text_parts.append(page_text)
        offset += len(page_text)
    return Document(_pdf_title(reader), "".join(text_parts), passages)


def _open_pdf(path: Path):  # -> pypdf.PdfReader
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise MediaError("the PDF is encrypted with a password")
        len(reader.pages)  # forces the page tree to be read: corrupt files fail here
    except MediaError:
        raise
    except DependencyError as exc:
        raise MediaError(f"the PDF is encrypted and cannot be opened without extra software: {exc}") from exc
    except (PdfReadError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MediaError(f"could not read the PDF (corrupt or truncated?): {exc}") from exc
    return reader


def _pdf_pages(reader) -> list[str]:
    pages: list[str] = []
    for page in reader.pages:
        try:
            pages.append(normalise_text(page.extract_text() or "").strip())
        except Exception:  # noqa: BLE001 - one broken page should not lose the rest of the document
            pages.append("")
    return pages


def _pdf_title(reader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # noqa: BLE001 - broken metadata is not worth failing the document for
        return None
    title = " ".join(str(title).split()) if title else ""
    return title or None


# --- passages -----------------------------------------------------------------------------------------

_CJK_CHARS = (
    "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0002fa1f"
)
_CJK = re.compile(f"[{_CJK_CHARS}]")
_HAN_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\u3000]*\n\s*")
_CLOSERS = "\"'”’」』）)\\]》»"
_SENTENCE_END = re.compile(
    rf"[。！？；…]+[{_CLOSERS}]*"  # Chinese: no space needed after the mark
    rf"|[.!?]+[{_CLOSERS}]*(?=\s)"  # English: a mark followed by a space or a newline
    r"|\n(?=[ \t]*(?:[-*+•]|\d{1,3}[.)]|\|)[ \t])"  # list items and table rows start a new sentence
)
_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "cf", "fig", "al", "approx", "no", "vol", "pp"]
)
_CLAUSE_MARKS = "，、,：:；;—"


def has_cjk(text: str) -> bool:
    """True if ``text`` has Chinese, Japanese or Korean characters."""
    return bool(_CJK.search(text))


def split_passages(
    text: str, max_chars: int = MAX_PASSAGE_CHARS, overlap_sentences: int = 0
) -> list[Passage]:
    """Cut ``text`` into passages of at most ``max_chars`` characters.

    Markdown headings start a new passage; paragraphs are kept whole where they fit, else cut between
    sentences, else between words (or between Chinese characters). ``overlap_sentences`` repeats the last
    sentences of a passage at the start of the next one. A CJK character counts as ``CJK_WEIGHT``
    characters: it carries about as much meaning as three Latin letters, so Chinese passages hold about
    as much as English ones.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    units = _sentence_units(text, max_chars)
    passages: list[Passage] = []
    i = 0
    while i < len(units):
        j = _extend(units, i, max_chars)
        start, end = units[i].start, units[j - 1].end
        passages.append(Passage(text[start:end], start, end))
        i = _next_start(units, i, j, max_chars, overlap_sentences)
    return passages


def split_sentences(text: str, max_chars: int = MAX_PASSAGE_CHARS) -> list[Passage]:
    """The sentences of ``text`` (Markdown headings and list items on their own), cut like passages if longer."""
    return [Passage(text[u.start : u.end], u.start, u.end) for u in _sentence_units(text, max_chars)]


CJK_WEIGHT = 3


class _Unit(NamedTuple):
    """One sentence (or piece of a long one), with its weighted start and end (see ``CJK_WEIGHT``)."""

    start: int
    end: int
    section: int
    paragraph: int
    wstart: int
    wend: int


def _weight(text: str) -> int:
    return len(text) + (CJK_WEIGHT - 1) * len(_CJK.findall(text))


def _extend(units: list[_Unit], i: int, max_chars: int) -> int:
    """End (exclusive) of the passage that starts at unit ``i``."""
    first = units[i]
    j = i + 1
    while j < len(units) and units[j].section == first.section and units[j].wend - first.wstart <= max_chars:
        j += 1
    if j < len(units) and units[j].section == first.section and units[j].paragraph == units[j - 1].paragraph:
        # The cut falls inside a paragraph: cut before that paragraph instead, if enough stays behind.
        for k in range(j - 1, i, -1):
            if units[k].paragraph != units[k - 1].paragraph:
                return k if units[k - 1].wend - first.wstart >= max_chars // 3 else j
    return j


def _next_start(units: list[_Unit], i: int, j: int, max_chars: int, overlap: int) -> int:
    if overlap <= 0 or j >= len(units) or units[j].section != units[j - 1].section:
        return j
    start = max(j - overlap, i + 1)
    while start < j and units[j].wend - units[start].wstart > max_chars:
        start += 1
    return start


def _sentence_units(text: str, max_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    paragraph = 0
    last, wlast = 0, 0  # weighted offsets, computed incrementally
    for section, (s_start, s_end) in enumerate(_sections(text)):
        for p_start, p_end in _paragraphs(text, s_start, s_end):
            for start, end in _sentences(text, p_start, p_end):
                for a, b in _split_long(text, start, end, max_chars):
                    wa = wlast + _weight(text[last:a])
                    wlast, last = wa + _weight(text[a:b]), b
                    units.append(_Unit(a, b, section, paragraph, wa, wlast))
            paragraph += 1
    return units


def _sections(text: str) -> list[tuple[int, int]]:
    """Spans that start at each Markdown heading (a heading with nothing under it joins the next)."""
    starts = [0]
    for match in _HEADING.finditer(text):
        if match.start() > 0 and text[starts[-1] : match.start()].strip() != _heading_line(text, starts[-1]):
            starts.append(match.start())
    return list(zip(starts, starts[1:] + [len(text)], strict=True))


def _heading_line(text: str, start: int) -> str | None:
    heading = _HEADING.match(text, start)
    return heading.group().strip() if heading else None


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    bounds = [start]
    heading = _HEADING.match(text, start)
    if heading and heading.end() < end:
        bounds.append(heading.end())  # the heading line is a paragraph of its own
    bounds += [m.end() for m in _PARAGRAPH_BREAK.finditer(text, bounds[-1], end)]
    bounds.append(end)
    return [span for a, b in zip(bounds, bounds[1:], strict=False) if (span := _trim(text, a, b))]


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    begin = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group().startswith(".") and _is_abbreviation(text, match.start()):
            continue
        cut = match.end() if match.group() != "\n" else match.start()
        if span := _trim(text, begin, cut):
            spans.append(span)
        begin = cut
    if span := _trim(text, begin, end):
        spans.append(span)
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    word = re.search(r"(\w+)$", text[max(0, dot - 12) : dot])
    if not word:
        return False
    token = word.group(1)
    return token.lower() in _ABBREVIATIONS or (len(token) == 1 and token.isalpha() and token.isupper())


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Pieces of at most ``max_chars``, cut after a clause mark, at a space, or between CJK characters."""
    pieces: list[tuple[int, int]] = []
    if _weight(text[start:end]) <= max_chars:  # the common case, without a loop over characters
        return [(start, end)]
    while (limit := _weighted_limit(text, start, max_chars)) < end:
        cut = _cut_point(text, start, limit)
        if span := _trim(text, start, cut):
            pieces.append(span)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if span := _trim(text, start, end):
        pieces.append(span)
    return pieces


def _weighted_limit(text: str, start: int, max_chars: int) -> int:
    """The furthest offset ``limit`` with ``_weight(text[start:limit]) <= max_chars`` (at least start + 1)."""
    weight, limit = 0, start
    while limit < len(text):
        weight += CJK_WEIGHT if _CJK.match(text[limit]) else 1
        if weight > max_chars:
            break
        limit += 1
    return max(limit, start + 1)


def _cut_point(text: str, start: int, limit: int) -> int:
    """Best place in (start, limit] to cut: never between two letters or digits of a word."""
    half = start + (limit - start) // 2
    for cut in range(limit, half, -1):
        if text[cut - 1] in _CLAUSE_MARKS:
            return cut
    for cut in range(limit, start, -1):
        if text[cut].isspace() or text[cut - 1].isspace():
            return cut
    for cut in range(limit, start, -1):
        if not _inside_word(text[cut - 1], text[cut]):
            return cut
    return limit  # one "word" longer than a passage (a URL, a hash): no choice but to cut it


def _inside_word(left: str, right: str) -> bool:
    def wordish(ch: str) -> bool:
        if "\uac00" <= ch <= "\ud7af":  # Korean writes spaces between words: a syllable is word-ish
            return True
        return (ch.isalnum() or ch in "_-'’") and not _CJK.match(ch)

    return wordish(left) and wordish(right)


# --- search segmentation ------------------------------------------------------------------------------


def segment_for_search(text: str, with_chars: bool = False) -> str:
    """Put spaces between Chinese words so that a ``unicode61`` full-text index can find them.

    Runs of Chinese characters are cut with jieba's search mode (a long word also yields its parts:
    "共和国" -> "共和 共和国"); everything else is returned unchanged. ``with_chars`` adds each
    character of longer words too, so that indexing with it lets "猫" find "小猫"; use it for
    documents, not for queries.
    """
    if not _HAN_RUN.search(text):
        return text
    parts: list[str] = []
    last = 0
    for match in _HAN_RUN.finditer(text):
        parts += [text[last : match.start()], _segment_run(match.group(), with_chars)]
        last = match.end()
    parts.append(text[last:])
    return _join_spaced([part for part in parts if part])


def _join_spaced(parts: list[str]) -> str:
    out = parts[0]
    for part in parts[1:]:
        out += part if out[-1].isspace() or part[0].isspace() else " " + part
    return out


def _segment_run(run: str, with_chars: bool) -> str:
    words = [w for w in _jieba().cut_for_search(run) if w.strip()]
    if with_chars:
        words += list(dict.fromkeys(ch for w in words if len(w) > 1 for ch in w))
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def _jieba():  # -> jieba module, loaded once and quietly
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba
