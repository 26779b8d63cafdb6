"""Search across modalities on the real sample collection with the real bundled models."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TUXPAINT, first
from textnorm import says, squashed


def names(hits) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_text_query_finds_the_cat_photo_first(indexed):
    hits = indexed.search("a cat", k=20).hits
    assert Path(first(hits, "image").path).name == "chelsea_cat.jpg"
    assert any(e.kind == "label" and "cat" in e.text for e in first(hits, "image").why)


def test_text_query_finds_coffee(indexed):
    hits = indexed.search("coffee", k=20).hits
    assert Path(first(hits, "image").path).name == "coffee.jpg"


def test_chinese_query_finds_the_cat(indexed):
    hits = indexed.search("一只猫", k=20).hits
    assert Path(first(hits, "image").path).name == "chelsea_cat.jpg"
    assert Path(first(hits, "text").path).name == "猫.txt"


def test_image_query_ranks_coffee_photo_and_document_above_unrelated(indexed, samples):
    result = indexed.search(image=samples / "photos" / "coffee.jpg", k=30)
    ranked = names(result.hits + result.weaker)  # the order, above and below the cut-off
    assert ranked[0] == "coffee.jpg"
    assert ranked.index("coffee.md") < ranked.index("rockets.html")
    assert ranked.index("coffee.md") < ranked.index("dickens.txt")
    assert any(e.kind == "label" and e.text == "espresso" for e in result.understood)


def test_image_refined_by_text(indexed, samples):
    def ranked(result):  # the order, above and below the cut-off
        return names(result.hits + result.weaker)

    plain = ranked(indexed.search(image=samples / "photos" / "coffee.jpg", k=30))
    refined = ranked(indexed.search("咖啡", image=samples / "photos" / "coffee.jpg", k=30))
    assert refined[0] in {"coffee.jpg", "咖啡.md"}
    assert refined.index("咖啡.md") <= plain.index("咖啡.md")


def test_spoken_question_finds_the_recording_and_the_moment(indexed, spoken):
    result = indexed.search(audio=spoken("it was the best of times, it was the worst of times"), k=5)
    top = result.hits[0]
    assert Path(top.path).name == "two_cities.wav"
    moment = next(e for e in top.why if e.kind == "transcript")
    assert says(moment.text, "it was the best of times"), moment.text
    assert moment.start is not None and moment.start < 10.0
    assert any(e.kind == "transcript" for e in result.understood)


def test_a_spoken_query_in_a_chosen_language(indexed, spoken):
    from polymodal.errors import UsageError

    question = spoken("it was the best of times, it was the worst of times")
    told = indexed.search(audio=question, k=5, language="en")
    assert Path(told.hits[0].path).name == "two_cities.wav"
    heard = " ".join(e.text for e in told.understood if e.kind == "transcript")
    assert says(heard, "it was the best of times"), heard
    with pytest.raises(UsageError, match="unknown language 'klingon'"):
        indexed.search(audio=question, language="klingon")


def test_a_bark_finds_the_dog_recording_above_other_animals(indexed):
    bark = TUXPAINT / "animals" / "mammals" / "dogs" / "dog.ogg"  # a different dog, recorded by Tux Paint
    hits = indexed.search(audio=bark, k=30, modality="audio").hits
    animals = [n for n in names(hits) if n.endswith(".mp3")]
    assert animals[0] == "dog.mp3"


def test_filters_modality_and_path(indexed):
    only_text = indexed.search("cat", modality="text", k=10).hits
    assert only_text and all(h.modality == "text" for h in only_text)
    only_sounds = indexed.search("the sound of an animal", path="*/sounds/*", k=5).hits
    assert only_sounds and all("/sounds/" in h.path for h in only_sounds)
    assert len(indexed.search("cat", k=2).hits) == 2


def test_show_gives_the_evidence(indexed, samples):
    item = indexed.item(str(samples / "recordings" / "two_cities.wav"))
    assert item.modality == "audio" and item.meta["language"] == "en"
    transcript = [e for e in item.evidence if e.kind == "transcript"]
    assert transcript and all(a.start <= b.start for a, b in zip(transcript, transcript[1:], strict=False))
    page = indexed.item(str(samples / "scans" / "page.png"))
    assert any(e.kind == "ocr" and "segmentation" in squashed(e.text) for e in page.evidence)
    assert indexed.item(item.id).path == item.path


def test_status_counts(indexed, samples):
    status = indexed.status()
    assert status["per_modality"]["image"] >= 8 and status["per_modality"]["audio"] >= 13
    assert status["per_modality"]["text"] >= 5
    # Other tests share this session's store; none of the sample collection's files may have an error.
    assert not [e for e in status["recent_errors"] if e["path"].startswith(str(samples))], status["recent_errors"]
    assert any(m.startswith("whisper-base") for m in status["models"])


def test_similar_items_cross_modalities(indexed, samples):
    """Items like one are searched as a query by example (its vector, its words, how it looks or sounds), so the
    note about cats finds the cat photo, and one Beckett recording the other (by the calibrated relevance of
    a query by example, the order the badges show; the bare vector path had put the other Beckett recording
    last of 8 and the cat photo fifth)."""

    def similar(name: str) -> list[str]:
        result = indexed.similar(str(next(samples.rglob(name))), k=8)
        scores = [h.score for h in result.hits]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        assert name not in names(result.hits) and not result.weaker  # itself left out; no cut-off
        return names(result.hits)

    assert "endgame_nagg_nell.wav" in similar("beckett.wav")[:2]
    cats = similar("cats.md")
    assert cats[0] == "猫.txt" and "chelsea_cat.jpg" in cats[:3]
    assert {"cats.md", "猫.txt"} & set(similar("chelsea_cat.jpg")[:2])
