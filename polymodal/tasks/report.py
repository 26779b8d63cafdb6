"""Render an analysis :class:`~polymodal.tasks.analyze.Report` as Markdown, self-contained HTML or JSON.

The HTML file needs nothing else: styles are inline, images are embedded as base64 JPEG thumbnails, and
recordings are shown as transcript segments with their times. Each sentence of the overall summary is listed
with the items and the line it rests on; models' confidences are shown as the models', beside what they saw
or heard. Internal notes (what the checks dropped and why) are rendered only with ``debug``; JSON always has
them, under ``diagnostics``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polymodal.errors import UsageError
from polymodal.tasks.facts import clock

if TYPE_CHECKING:
    from polymodal.tasks.analyze import ItemReport, Report

FORMATS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".json": "json"}
THUMBNAIL_SIZE = 320
KIND = {"text": "document", "image": "image", "audio": "recording"}
SEEN = "Seen by the image model (its confidence)"
HEARD = "Heard by the sound model (its confidence)"


def format_for(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise UsageError(f"unknown report format {path.suffix or '(none)'}: use .md, .html or .json") from None


def render(report: Report, fmt: str, debug: bool = False) -> str:
    return {"md": to_markdown, "html": to_html, "json": to_json}[fmt](report, debug)


def write_report(report: Report, path: Path, debug: bool = False) -> Path:
    """Write ``report`` to ``path`` in the format its extension names (.md, .html, .json)."""
    text = render(report, format_for(path), debug)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def to_json(report: Report, debug: bool = False) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2)


# --- Markdown ------------------------------------------------------------------------------------------------
def to_markdown(report: Report, debug: bool = False) -> str:
    names = [item.name for item in report.items]
    out = [f"# {report.title}", "", f"{len(report.items)} items: {', '.join(names)}", "", "## Summary", ""]
    out += [report.summary, "", f"_({_by(report.summary_by)})_", ""]
    if report.summary_points:
        out += ["What each sentence rests on:", ""]
        out += [f"- {p.text} — _{'; '.join(_rests(p))}_" for p in report.summary_points]
        out.append("")
    if report.key_points:
        out += ["## Key points", "", *[f"- {p}" for p in report.key_points], ""]
    if report.entities:
        out += ["## Entities", ""]
        out += [f"- **{e.text}** ({e.kind}; in {_in(e.items, names)})" for e in report.entities]
        out.append("")
    out += ["## Agreement and contradiction", ""]
    out += [_relation_md(r, names) for r in report.relations] or ["- No statements of different items overlap."]
    out.append("")
    for i, item in enumerate(report.items, 1):
        out += _item_md(i, item)
    out += [f"_Analyzed in {report.seconds:.1f} s._", *[f"_Note: {n}_" for n in report.notes]]
    if debug:
        out += ["", "## Diagnostics", "", *[f"- {d}" for d in _diagnostics(report)]]
    return "\n".join(out).rstrip() + "\n"


def _rests(point: Any) -> list[str]:
    """ "coffee.md: “A good espresso starts …”" for each source of a summary sentence."""
    return [f"{name}: “{_short(line)}”" for name, line in zip(point.sources, point.evidence, strict=True)]


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _diagnostics(report: Report) -> list[str]:
    return [*report.diagnostics, *[f"{item.name}: {d}" for item in report.items for d in item.diagnostics]]


def _item_md(number: int, item: ItemReport) -> list[str]:
    out = [f"## {number}. {item.name} ({KIND[item.modality]}, {item.format})", ""]
    if item.title:
        out += [f"**Title:** {item.title}", ""]
    out += [item.summary, "", f"_({_by(item.summary_by)})_", ""]
    if item.key_points and item.modality != "image":
        out += ["Key points:", "", *[f"- {p}" for p in item.key_points], ""]
    if item.labels:
        out += [f"{SEEN}: " + ", ".join(f"{label} ({score:.0%})" for label, score in item.labels), ""]
    if item.ocr:
        out += ["Text in the image:", "", *[f"> {line}" for line in item.ocr], ""]
    if item.layout_lines:
        out += ["Layout:", "", "```", *item.layout_lines, "```", ""]
    if item.tags:
        out += [f"{HEARD}: " + ", ".join(f"{tag} ({score:.0%})" for tag, score in item.tags), ""]
    if item.transcript:
        language = f" ({item.language})" if item.language else ""
        out += [f"Transcript{language}:", ""]
        out += [f"- `{clock(s.start)}–{clock(s.end)}` {s.text}" for s in item.transcript]
        out.append("")
    out += [f"_Note: {note}_" for note in item.notes]
    return out + ([""] if item.notes else [])


def _relation_md(relation: Any, names: list[str]) -> str:
    a, b = relation.items
    verb = "agree" if relation.kind == "agree" else "may contradict"
    return (
        f"- {names[a]} and {names[b]} {verb} ({relation.why}; similarity {relation.similarity:.2f}): "
        f"“{relation.statements[0]}” / “{relation.statements[1]}”"
    )


def _in(items: list[int], names: list[str]) -> str:
    return ", ".join(names[i] for i in items)


def _by(by: str) -> str:
    return "extractive: sentences from the sources" if by == "extractive" else f"written by {by} from the evidence"


# --- HTML ----------------------------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.5}h1,h2,h3{line-height:1.2}section.item{border-top:1px solid #ddd;padding-top:1em;
margin-top:1.5em}.by,.note{color:#666;font-size:.9em}img.thumb{max-width:320px;border-radius:6px;float:right;
margin:0 0 1em 1em}blockquote{margin:.3em 0;padding:.2em .8em;border-left:3px solid #bbb;background:#f7f7f7}
table{border-collapse:collapse}td{padding:.15em .6em;vertical-align:top}td.t{font-family:monospace;color:#555;
white-space:nowrap}.contradict{color:#a33}.agree{color:#262}.clear{clear:both}
"""


def to_html(report: Report, debug: bool = False) -> str:
    names = [item.name for item in report.items]
    body = [f"<h1>{_e(report.title)}</h1>", f"<p>{len(report.items)} items: {_e(', '.join(names))}</p>"]
    body += ["<h2>Summary</h2>", f"<p>{_e(report.summary)}</p>", f'<p class="by">{_e(_by(report.summary_by))}</p>']
    if report.summary_points:
        body += ['<details class="rests"><summary>What each sentence rests on</summary><ul>']
        body += [f"<li>{_e(p.text)} <span class=\"by\">— {_e('; '.join(_rests(p)))}</span></li>"
                 for p in report.summary_points]  # fmt: skip
        body.append("</ul></details>")
    if report.key_points:
        body += ["<h2>Key points</h2>", _ul(report.key_points)]
    if report.entities:
        body += ["<h2>Entities</h2>", "<ul>"]
        body += [f"<li><b>{_e(e.text)}</b> ({_e(e.kind)}; in {_e(_in(e.items, names))})</li>" for e in report.entities]
        body.append("</ul>")
    body += ["<h2>Agreement and contradiction</h2>", "<ul>"]
    none = "<li>No statements of different items overlap.</li>"
    body += [_relation_html(r, names) for r in report.relations] or [none]
    body.append("</ul>")
    for i, item in enumerate(report.items, 1):
        body += _item_html(i, item)
    body.append(f'<p class="by">Analyzed in {report.seconds:.1f} s.</p>')
    body += [f'<p class="note">Note: {_e(n)}</p>' for n in report.notes]
    if debug:
        body += ["<h2>Diagnostics</h2>", _ul(_diagnostics(report))]
    head = f'<meta charset="utf-8"><title>{_e(report.title)}</title><style>{STYLE}</style>'
    return f"<!DOCTYPE html>\n<html><head>{head}</head><body>\n" + "\n".join(body) + "\n</body></html>\n"


def _item_html(number: int, item: ItemReport) -> list[str]:
    out = ['<section class="item">', f"<h2>{number}. {_e(item.name)} ({KIND[item.modality]}, {_e(item.format)})</h2>"]
    thumb = thumbnail_data_url(item)
    if thumb:
        out.append(f'<img class="thumb" alt="{_e(item.name)}" src="{thumb}">')
    if item.title:
        out.append(f"<p><b>Title:</b> {_e(item.title)}</p>")
    out += [f"<p>{_e(item.summary)}</p>", f'<p class="by">{_e(_by(item.summary_by))}</p>']
    if item.key_points and item.modality != "image":
        out += ["<h3>Key points</h3>", _ul(item.key_points)]
    if item.labels:
        seen = ", ".join(f"{label} ({score:.0%})" for label, score in item.labels)
        out.append(f"<p>{_e(SEEN)}: {_e(seen)}</p>")
    if item.ocr:
        out += ["<h3>Text in the image</h3>", *[f"<blockquote>{_e(line)}</blockquote>" for line in item.ocr]]
    if item.layout_lines:
        out += ["<h3>Layout</h3>", f"<pre>{_e(chr(10).join(item.layout_lines))}</pre>"]
    if item.tags:
        heard = ", ".join(f"{tag} ({score:.0%})" for tag, score in item.tags)
        out.append(f"<p>{_e(HEARD)}: {_e(heard)}</p>")
    if item.transcript:
        language = f" ({item.language})" if item.language else ""
        out += [f"<h3>Transcript{_e(language)}</h3>", "<table>"]
        out += [
            f'<tr><td class="t">{clock(s.start)}–{clock(s.end)}</td><td>{_e(s.text)}</td></tr>' for s in item.transcript
        ]
        out.append("</table>")
    out += [f'<p class="note">Note: {_e(note)}</p>' for note in item.notes]
    return [*out, '<div class="clear"></div>', "</section>"]


def _relation_html(relation: Any, names: list[str]) -> str:
    a, b = relation.items
    verb = "agree" if relation.kind == "agree" else "may contradict"
    return (
        f'<li class="{relation.kind}">{_e(names[a])} and {_e(names[b])} {verb} ({_e(relation.why)}; '
        f"similarity {relation.similarity:.2f}): “{_e(relation.statements[0])}” / “{_e(relation.statements[1])}”</li>"
    )


def thumbnail_data_url(item: ItemReport) -> str | None:
    """A base64 JPEG data URL of an image item, at most ``THUMBNAIL_SIZE`` pixels on a side."""
    image = item.facts.image if item.facts is not None else None
    if image is None:
        return None
    from polymodal.media.image import thumbnail

    buffer = io.BytesIO()
    thumbnail(image, THUMBNAIL_SIZE).convert("RGB").save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _ul(points: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(p)}</li>" for p in points) + "</ul>"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
