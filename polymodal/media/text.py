"""Read documents (plain text, Markdown, HTML, PDF) into text and passages with character offsets.

Passages are what gets embedded and shown as search hits: paragraphs first, then sentences (English and
Chinese punctuation), never cut inside a word. ``segment_for_search`` spaces out Chinese words so that a
``unicode61`` full-text index can find them.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple

from polymodal.media.errors import MediaError

MAX_PASSAGE_CHARS = 600
# Of one text file, only this much is read (and indexed): reading and cutting text is linear, but a 200 MB
# one-line log is not a document anyone searches passage by passage. Document.notes says when it was cut.
MAX_TEXT_BYTES = 16 * 1024 * 1024
# The encoding is chosen from the start of a file: charset-normalizer needs a few KB, never the whole file.
ENCODING_SAMPLE_BYTES = 256 * 1024
_READ_CHUNK = 1024 * 1024


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
    notes: list[str] = field(default_factory=list)  # what was odd or cut, in words


def read_text(path: Path, fmt: str, max_bytes: int = MAX_TEXT_BYTES) -> Document:
    """Read a document of format ``fmt`` ("txt", "md", "html" or "pdf", as ``detect`` says).

    At most ``max_bytes`` of a text or HTML file (``max_bytes`` characters of a PDF's text) are read;
    ``Document.notes`` says so, and what else was odd (bytes that were not valid in the encoding).
    """
    path = Path(path)
    if fmt == "pdf":
        return _read_pdf(path, max_chars=max_bytes)
    if fmt not in ("txt", "md", "html"):
        raise MediaError(f"not a text format: {fmt}")
    text, notes = _read_decoded(path, max_bytes, html=fmt == "html")
    if fmt == "html":
        document = _html_document(text)
        document.notes[:0] = notes
        return document
    text = normalise_text(text)
    title = _markdown_title(text) if fmt == "md" else None
    return Document(title, text, split_passages(text), notes)


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Reading a file: what the system says is wrong with it, in words."""
    try:
        yield
    except IsADirectoryError as exc:
        raise MediaError("is a directory, not a file") from exc
    except PermissionError as exc:
        raise MediaError("permission denied: the file cannot be read") from exc
    except OSError as exc:
        raise MediaError(f"could not read the file: {exc.strerror or exc}") from exc


def _read_decoded(path: Path, max_bytes: int, html: bool) -> tuple[str, list[str]]:
    """The file's text, decoded as it is read in chunks (the encoding is chosen from its start), and notes."""
    with _reading(), path.open("rb") as handle:
        sample = handle.read(min(ENCODING_SAMPLE_BYTES, max_bytes))
        partial = len(sample) == min(ENCODING_SAMPLE_BYTES, max_bytes)
        declared = _declared_charset(sample) if html else None
        encoding = choose_encoding(sample, partial=partial, declared=declared)
        assert encoding is not None  # not strict: there is always a last resort
        decoder = _Decoder(encoding.name, encoding.errors)
        parts = [decoder.feed(sample[encoding.skip :])]
        read = len(sample)
        while read < max_bytes and (chunk := handle.read(min(_READ_CHUNK, max_bytes - read))):
            parts.append(decoder.feed(chunk))
            read += len(chunk)
        cut = bool(handle.read(1))
        if not cut:
            parts.append(decoder.feed(b"", final=True))
        size = os.fstat(handle.fileno()).st_size
    notes = [encoding.note] if encoding.note else []
    if decoder.replaced:
        notes.append(f"some bytes are not valid {encoding.name}: they were replaced by \ufffd")
    if cut:
        notes.append(
            f"only the first {_megabytes(max_bytes)} of {_megabytes(size)} was read and indexed (text size limit)"
        )
    return "".join(parts), notes


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"


# --- encodings ----------------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# WHATWG: pages labelled Latin-1 or ASCII are Windows-1252; a UTF-16 label without a BOM is ignored.
_DECLARED_ALIASES = {"latin_1": "cp1252", "ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030"}
_UNTRUSTED_LABELS = frozenset({"utf_7", "utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be"})


@dataclass(frozen=True)
class Encoding:
    """A Python codec for a text, from :func:`choose_encoding`."""

    name: str
    skip: int = 0  # length of the byte order mark
    note: str | None = None
    errors: str = "strict"  # or WINDOWS_1252_FALLBACK, for UTF-8 with lines in Windows-1252


def decode_bytes(
    data: bytes, *, strict: bool = False, partial: bool = False, declared: str | None = None
) -> str | None:
    """Decode text: a BOM, UTF-16 without BOM, UTF-8, a declared charset, else charset-normalizer's guess
    from the first ``ENCODING_SAMPLE_BYTES`` (Windows-1252 when it cannot tell), else Latin-1.

    ``strict`` returns None instead of guessing wildly, or when the data has more than a few NUL bytes
    (binary); ``partial`` says ``data`` was cut from a longer file, so a split last character is fine.
    """
    sample = data[:ENCODING_SAMPLE_BYTES]
    encoding = choose_encoding(sample, strict=strict, partial=partial or len(sample) < len(data), declared=declared)
    if encoding is None:
        return None
    body = data[encoding.skip :]
    text = _decode(body, encoding.name, partial, encoding.errors)
    if text is None and not strict:
        text = codecs.getincrementaldecoder(encoding.name)(errors="replace").decode(body, final=not partial)
    return text


def choose_encoding(
    sample: bytes, *, strict: bool = False, partial: bool = False, declared: str | None = None
) -> Encoding | None:
    """The encoding of text that starts with ``sample``; None (only when ``strict``) if it does not look like
    text in any encoding. ``declared``: the charset an HTML page names, tried after UTF-8."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return Encoding(name, len(bom))
    if utf16 := _utf16_without_bom(sample, partial):
        return Encoding(utf16)
    if sample.count(0) > _allowed_nuls(len(sample)):
        # Binary, or UTF-16 / UTF-32 without a BOM of a script whose code units hold zero bytes.
        if wide := _wide_encoding(sample):
            return Encoding(wide)
        if strict:
            return None
    if _decode(sample, "utf-8", partial) is not None:
        return Encoding("utf-8")
    if _mostly_utf8(sample):
        note = "some lines are not UTF-8: their bytes were read as Windows-1252 (a file joined from two encodings?)"
        return Encoding("utf-8", 0, note, _windows_1252_fallback())
    note = None
    if declared:
        usable = _text_encoding(declared)
        if usable and _decode(sample, usable, partial) is not None:
            return Encoding(usable)
        why = "is not a text encoding Python knows" if usable is None else "does not match the bytes"
        note = f"the page declares charset {declared!r}, which {why}; the encoding was detected instead"
    guess = _guess_encoding(sample, partial)
    if guess is None:
        if strict:
            return None
        guess = "cp1252" if _decode(sample, "cp1252", partial) is not None else "latin-1"
    if note:
        note += f" ({guess})"
    return Encoding(guess, 0, note)


def _decode(data: bytes, encoding: str, partial: bool, errors: str = "strict") -> str | None:
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors=errors)
        return decoder.decode(data, final=not partial)
    except (UnicodeDecodeError, LookupError):
        return None


def _mostly_utf8(sample: bytes) -> bool:
    """UTF-8 with some invalid bytes, but at least as many valid non-ASCII characters: lines in two encodings
    (GB18030 or Shift-JIS text forms a valid UTF-8 character only now and then)."""
    text = sample.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - sample.count("\ufffd".encode())
    valid = len(text) - len(text.encode("ascii", errors="ignore")) - invalid
    return 0 < invalid <= valid


WINDOWS_1252_FALLBACK = "polymodal.windows-1252-fallback"


@functools.cache
def _windows_1252_fallback() -> str:
    """Register (once, on first use) a decoding error handler that reads bytes UTF-8 rejects as Windows-1252."""

    def fallback(error: UnicodeError) -> tuple[str, int]:
        if not isinstance(error, UnicodeDecodeError):
            raise error
        return error.object[error.start : error.end].decode("cp1252", errors="replace"), error.end

    codecs.register_error(WINDOWS_1252_FALLBACK, fallback)
    return WINDOWS_1252_FALLBACK


def _allowed_nuls(length: int) -> int:
    """A few NUL bytes (one per KB) are tolerated in text: a stray one from a broken editor or a bad copy."""
    return 0 if length < 64 else max(4, length // 1024)


def _utf16_without_bom(sample: bytes, partial: bool) -> str | None:
    """UTF-16 with no BOM, told by its NUL bytes: Latin-script text has a zero in every other byte."""
    pairs = len(sample) // 2
    if pairs < 8:
        return None
    even, odd = sample[0 : 2 * pairs : 2].count(0) / pairs, sample[1 : 2 * pairs : 2].count(0) / pairs
    for name, zeros, others in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if zeros >= 0.3 and others <= 0.02 and _decode(sample, name, partial or len(sample) % 2 == 1):
            return name
    return None


def _text_encoding(label: str) -> str | None:
    """The Python codec for a charset label (``windows-1252``, ``gbk``...), or None if it is not a text
    encoding (``rot13``, ``base64``) or one that a page may not declare (UTF-16 without a BOM, UTF-7)."""
    from charset_normalizer.constant import IANA_SUPPORTED
    from charset_normalizer.utils import iana_name

    name = iana_name(label.strip().lower(), strict=False)
    if name not in IANA_SUPPORTED or name in _UNTRUSTED_LABELS:
        return None
    return _DECLARED_ALIASES.get(name, name)


def _guess_encoding(sample: bytes, partial: bool) -> str | None:
    """charset-normalizer's choice, where it has one. On a few bytes it cannot tell Chinese from accented
    Western text (nor Western code pages apart): then the high bytes decide, paired (GB18030) or alone
    (Windows-1252); Windows-1252 also wins where it fits as well as the best guess."""
    from charset_normalizer import from_bytes

    # A character split at the end of the sample makes charset-normalizer reject the right encoding outright.
    matches = from_bytes(_clean_end(sample) if partial else sample)
    best = matches.best()
    if best is None:
        return None
    ties = [m.encoding for m in matches if m.chaos <= best.chaos + 1e-3 and m.coherence >= best.coherence - 1e-3]
    undecided = len(ties) > 1 and best.coherence == 0.0
    if undecided and _mostly_paired_high_bytes(sample) and _decode(sample, "gb18030", partial) is not None:
        return "gb18030"
    if (undecided or "cp1252" in ties) and _decode(sample, "cp1252", partial) is not None:
        return "cp1252"
    for name in (_DECLARED_ALIASES.get(best.encoding, best.encoding), best.encoding):
        if _decode(sample, name, partial) is not None:
            return name
    return None


def _wide_encoding(sample: bytes) -> str | None:
    """UTF-16 or UTF-32 (no BOM) as charset-normalizer sees it, for a sample with many NUL bytes."""
    from charset_normalizer import from_bytes

    if len(sample) < 64:
        return None
    wide = ["utf_16_le", "utf_16_be", "utf_32_le", "utf_32_be"]
    best = from_bytes(sample[: len(sample) // 4 * 4], cp_isolation=wide).best()  # never inside a code unit
    return best.encoding if best is not None else None


def _clean_end(sample: bytes) -> bytes:
    """``sample`` up to its last byte below 0x40 (a newline, a space, an ASCII mark): never inside a character
    of a multi-byte encoding, whose continuation bytes are all 0x40 or above."""
    cut = max(sample.rfind(b"\n"), sample.rfind(b" "))
    if cut < len(sample) // 2:
        cut = next((i for i in range(len(sample) - 1, len(sample) // 2, -1) if sample[i] < 0x40), len(sample) - 1)
    return sample[: cut + 1]


def _mostly_paired_high_bytes(sample: bytes) -> bool:
    """Chinese double-byte text pairs its high bytes; Western single-byte text (café) leaves them alone."""
    runs = re.findall(rb"[\x80-\xff]+", sample)
    high = sum(len(run) for run in runs)
    alone = sum(1 for run in runs if len(run) == 1)
    return high > 0 and high - alone >= 0.6 * high


class _Decoder:
    """Incremental decoding of a file read in chunks; bytes that do not decode are replaced (and counted)."""

    def __init__(self, encoding: str, errors: str = "strict"):
        self.encoding = encoding
        self.replaced = False
        self._inner = codecs.getincrementaldecoder(encoding)(errors=errors)

    def feed(self, chunk: bytes, final: bool = False) -> str:
        state = self._inner.getstate()
        try:
            return self._inner.decode(chunk, final=final)
        except UnicodeDecodeError:
            self.replaced = True
            self._inner = codecs.getincrementaldecoder(self.encoding)(errors="replace")
            self._inner.setstate(state)
            return self._inner.decode(chunk, final=final)


def _declared_charset(raw: bytes) -> str | None:
    """The charset an HTML page declares in its first 4 KB (meta tag or XML declaration), as written."""
    match = re.search(rb"""charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", raw[:4096], re.IGNORECASE)
    return match.group(1).decode("ascii") if match else None


def normalise_text(text: str) -> str:
    """Drop a BOM and NUL characters; use ``\\n`` line ends."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


# --- Markdown and HTML --------------------------------------------------------------------------------

# A heading line; its closing "#"s are stripped in Python (``_heading_text``): in the pattern, a lazy title
# followed by ``[ \t#]*$`` backtracks quadratically on a long line of "# # # ...".
_HEADING = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(\S.*)$", re.MULTILINE)


MAX_TITLE_CHARS = 300  # an unclosed <title> or a one-line file of "# ..." is not a title


def _bounded_title(title: str) -> str | None:
    return (title[: MAX_TITLE_CHARS - 1] + "…" if len(title) > MAX_TITLE_CHARS else title) or None


def _markdown_title(text: str) -> str | None:
    best: tuple[int, str] | None = None
    for match in _HEADING.finditer(text):
        level = len(match.group(1))
        if best is None or level < best[0]:
            best = (level, _heading_text(match.group(2)))
    return _bounded_title(best[1]) if best else None


def _heading_text(raw: str) -> str:
    """A heading's text without its closing sequence (``## Title ##`` -> ``Title``); at least one character."""
    return (raw[0] + raw[1:].rstrip(" \t#")).strip()


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
_HEADING_MARKS = {f"h{n}": "\n\n" + "#" * n + " " for n in range(1, 7)}  # shared strings: a page of 4 million
# headings holds 4 million pointers, not 4 million strings
_LINE_END_SPACE = re.compile(r"(?<![ \t])[ \t]++(?=\n)|(?<=\n)[ \t]++")  # possessive, from a run's start: linear
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
            self.parts.append(_HEADING_MARKS[tag])  # a heading starts a new passage
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
    notes = []
    if parser.rawdata.startswith("<"):
        # An unclosed tag or comment runs to the end of the page, where browsers drop it. HTMLParser.close()
        # would re-scan the rest once per "<" in it (quadratic: 3 s for 80 KB of "<!--").
        notes.append(f"an unclosed tag or comment hides the last {len(parser.rawdata)} characters of the page")
        parser.rawdata = ""
    parser.close()
    text = _LINE_END_SPACE.sub("", "".join(parser.parts))
    text = re.sub(r"\n{3,}", "\n\n", text).strip().replace(_PRE_NEWLINE, "\n").replace(_PRE_SPACE, " ")
    title = _bounded_title(" ".join("".join(parser.title_parts or parser.first_h1).split()))
    return Document(title, text, split_passages(text), notes)


# --- PDF ----------------------------------------------------------------------------------------------


def _read_pdf(path: Path, max_chars: int = MAX_TEXT_BYTES) -> Document:
    reader, size = _open_pdf(path)
    pages, notes = _pdf_pages(reader, max_chars, max(MIN_PDF_OPERATORS, size))
    if not any(page.strip() for page in pages):
        raise MediaError(notes[0] if notes else "no text layer (scanned PDF?)")
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
    return Document(_pdf_title(reader), "".join(text_parts), passages, notes)


# pypdf spends ~80 us on each drawing operator (and a page's text grows by quadratic copying: 4 MB of "Tj"
# takes 80 s), so 100 KB of compressed operators could keep it busy for hours. A page whose instructions are over
# MAX_PAGE_CONTENT_BYTES is skipped; a document gets max(MIN_PDF_OPERATORS, its size in bytes) operators.
MAX_PAGE_CONTENT_BYTES = 1024 * 1024
MIN_PDF_OPERATORS = 200_000


class _OperatorBudgetSpent(Exception):
    """Raised from pypdf's operator visitor to stop extracting; caught in ``_pdf_pages``, never escapes."""


# What pypdf raises on a malformed file: its own errors, and Python's from deep inside its parser.
_PDF_ERRORS = (
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    ArithmeticError,
    AssertionError,
    NotImplementedError,  # "Unsupported filter"
    RecursionError,
    OSError,
)


def _open_pdf(path: Path):  # -> (pypdf.PdfReader, size in bytes)
    import io

    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    with _reading():
        data = path.read_bytes()  # pypdf reads the whole file into memory anyway
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise MediaError("encrypted PDF, password required")
        len(reader.pages)  # forces the page tree to be read: corrupt files fail here
    except MediaError:
        raise
    except DependencyError as exc:
        raise MediaError(f"encrypted PDF that needs extra software to open: {exc}") from exc
    except (PyPdfError, *_PDF_ERRORS) as exc:
        raise MediaError(f"could not read the PDF (corrupt or truncated?): {_pdf_reason(exc)}") from exc
    return reader, len(data)


def _pdf_pages(reader, max_chars: int, operators: int) -> tuple[list[str], list[str]]:
    """Each page's text, up to ``max_chars`` and ``operators`` in all, and notes on what was not read (a broken
    page does not lose the rest of the document)."""
    from pypdf.errors import LimitReachedError, PyPdfError

    count = len(reader.pages)
    if count == 0:
        raise MediaError("no text: the PDF has no pages")
    pages: list[str] = []
    total = 0
    skipped = _Skipped(count)
    left = [operators]

    def spend(*_: Any) -> None:
        left[0] -= 1
        if left[0] < 0:
            raise _OperatorBudgetSpent

    for number, page in enumerate(reader.pages, start=1):
        if total >= max_chars:
            skipped.stopped = f"only the first {number - 1} of {count} pages were read and indexed (text size limit)"
            break
        raw = ""
        try:
            if (size := _content_bytes(page)) > MAX_PAGE_CONTENT_BYTES:
                skipped.big.append((number, size))
            else:
                raw = page.extract_text(visitor_operand_before=spend) or ""
        except _OperatorBudgetSpent:
            skipped.stopped = (
                f"only the first {number - 1} of {count} pages were read: the PDF's drawing instructions are over "
                f"the work limit ({operators:,} operators for a file of this size, a sign of a crafted file)"
            )
            break
        except LimitReachedError:
            skipped.over_limit.append(number)
        except (PyPdfError, *_PDF_ERRORS) as exc:  # pypdf's own failures on a malformed page, named in the note
            skipped.broken.append((number, exc))
        text = normalise_text(raw).strip()
        pages.append(text[: max_chars - total])
        total += len(pages[-1])
    return pages, skipped.notes()


def _content_bytes(page) -> int:
    """Size of a page's drawing instructions, decoded (pypdf keeps them: extracting does not decode again)."""
    contents = page.get_contents()
    return 0 if contents is None else len(contents.get_data())


@dataclass
class _Skipped:
    """Pages of a PDF whose text was not read, and why."""

    count: int
    stopped: str | None = None
    over_limit: list[int] = field(default_factory=list)
    big: list[tuple[int, int]] = field(default_factory=list)
    broken: list[tuple[int, Exception]] = field(default_factory=list)

    def notes(self) -> list[str]:
        notes = [self.stopped] if self.stopped else []
        if self.over_limit:
            notes.append(
                f"{_pages(self.over_limit, self.count)} over the PDF decompression size limit (a content stream "
                "inflates past pypdf's limit, maybe a zip bomb): no text was read from it"
            )
        if self.big:
            largest = max(size for _, size in self.big)
            notes.append(
                f"{_pages([n for n, _ in self.big], self.count)} over the {_megabytes(MAX_PAGE_CONTENT_BYTES)} limit "
                f"of drawing instructions a page ({_megabytes(largest)}): not read (a drawing, or a crafted file)"
            )
        if self.broken:
            numbers = [n for n, _ in self.broken]
            notes.append(f"{_pages(numbers, self.count)} could not be read: {_pdf_reason(self.broken[0][1])}")
        return notes


def _pages(numbers: list[int], count: int) -> str:
    if len(numbers) == count:
        return "every page is" if count > 1 else "the page is"
    shown = ", ".join(str(n) for n in numbers[:5]) + (", ..." if len(numbers) > 5 else "")
    return f"page {shown} is" if len(numbers) == 1 else f"{len(numbers)} pages ({shown}) are"


def _pdf_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _pdf_title(reader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # noqa: BLE001 - broken metadata is not worth failing the document for
        return None
    return _bounded_title(" ".join(str(title).split())) if title else None


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
    rf"|(?<![.!?])[.!?]++[{_CLOSERS}]*+(?=\s)"  # English: marks then a space (possessive, from the first
    # mark only: "......" without a space would otherwise be re-scanned from each dot, quadratically)
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
    units = _Window(_sentence_units(text, max_chars))
    passages: list[Passage] = []
    i = 0
    while units.has(i):
        j = _extend(units, i, max_chars)
        start, end = units[i].start, units[j - 1].end
        passages.append(Passage(text[start:end], start, end))
        i = _next_start(units, i, j, max_chars, overlap_sentences)
        units.forget_before(i)
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


class _Window:
    """The units a passage is being made of, drawn from a generator as needed and forgotten once passed: memory
    holds one passage's sentences, not the document's (16 MB of one-line paragraphs are 4 million units)."""

    def __init__(self, units: Iterator[_Unit]):
        self._units = units
        self._kept: list[_Unit] = []
        self._first = 0  # the index of _kept[0]

    def has(self, index: int) -> bool:
        while index >= self._first + len(self._kept):
            unit = next(self._units, None)
            if unit is None:
                return False
            self._kept.append(unit)
        return True

    def __getitem__(self, index: int) -> _Unit:
        if index < self._first or not self.has(index):
            raise IndexError(index)
        return self._kept[index - self._first]

    def forget_before(self, index: int) -> None:
        if index > self._first:
            del self._kept[: index - self._first]
            self._first = index


def _weight(text: str) -> int:
    return len(text) + (CJK_WEIGHT - 1) * (len(text) - len(_CJK.sub("", text)))  # no list of characters


def _extend(units: _Window, i: int, max_chars: int) -> int:
    """End (exclusive) of the passage that starts at unit ``i``."""
    first = units[i]
    j = i + 1
    while units.has(j) and units[j].section == first.section and units[j].wend - first.wstart <= max_chars:
        j += 1
    if units.has(j) and units[j].section == first.section and units[j].paragraph == units[j - 1].paragraph:
        # The cut falls inside a paragraph: cut before that paragraph instead, if enough stays behind.
        for k in range(j - 1, i, -1):
            if units[k].paragraph != units[k - 1].paragraph:
                return k if units[k - 1].wend - first.wstart >= max_chars // 3 else j
    return j


def _next_start(units: _Window, i: int, j: int, max_chars: int, overlap: int) -> int:
    if overlap <= 0 or not units.has(j) or units[j].section != units[j - 1].section:
        return j
    start = max(j - overlap, i + 1)
    while start < j and units[j].wend - units[start].wstart > max_chars:
        start += 1
    return start


def _sentence_units(text: str, max_chars: int) -> Iterator[_Unit]:
    paragraph = 0
    last, wlast = 0, 0  # weighted offsets, computed incrementally
    for section, (s_start, s_end) in enumerate(_sections(text)):
        for p_start, p_end in _paragraphs(text, s_start, s_end):
            for start, end in _sentences(text, p_start, p_end):
                for a, b in _split_long(text, start, end, max_chars):
                    wa = wlast + _weight(text[last:a])
                    wlast, last = wa + _weight(text[a:b]), b
                    yield _Unit(a, b, section, paragraph, wa, wlast)
            paragraph += 1


def _sections(text: str) -> Iterator[tuple[int, int]]:
    """Spans that start at each Markdown heading (a heading with nothing under it joins the next)."""
    start = 0
    for match in _HEADING.finditer(text):
        if match.start() > 0 and text[start : match.start()].strip() != _heading_line(text, start):
            yield start, match.start()
            start = match.start()
    yield start, len(text)


def _heading_line(text: str, start: int) -> str | None:
    heading = _HEADING.match(text, start)
    return heading.group().strip() if heading else None


def _paragraphs(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    heading = _HEADING.match(text, start)
    first = heading.end() if heading and heading.end() < end else start  # a heading line is a paragraph
    breaks = (m.end() for m in _PARAGRAPH_BREAK.finditer(text, first, end))
    begin = start
    for cut in itertools.chain([first] if first > start else [], breaks, [end]):
        if span := _trim(text, begin, cut):
            yield span
        begin = cut


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    begin = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group().startswith(".") and _is_abbreviation(text, match.start()):
            continue
        cut = match.end() if match.group() != "\n" else match.start()
        if span := _trim(text, begin, cut):
            yield span
        begin = cut
    if span := _trim(text, begin, end):
        yield span


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
    if not _CJK.search(text, start, start + max_chars):  # the common case: one character, one unit of weight
        return max(min(start + max_chars, len(text)), start + 1)
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
    out = [parts[0]]
    for previous, part in zip(parts, parts[1:], strict=False):
        out.append(part if previous[-1].isspace() or part[0].isspace() else " " + part)
    return "".join(out)


def _segment_run(run: str, with_chars: bool) -> str:
    words = [w for w in _jieba().cut_for_search(run) if w.strip()]
    if with_chars:
        words += list(dict.fromkeys(ch for w in words if len(w) > 1 for ch in w))
    return " ".join(words)


def chinese_word_frequency(word: str) -> int:
    """How often ``word`` occurs in jieba's dictionary corpus; 0 for a word it does not know."""
    return int(_jieba().dt.FREQ.get(word, 0))


@functools.lru_cache(maxsize=1)
def _jieba():  # -> jieba module, loaded once and quietly
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba
