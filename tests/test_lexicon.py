"""Which words have a meaning: WordNet (Debian wordnet-base) for English, jieba's dictionary for Chinese."""

from __future__ import annotations

import pytest

from polymodal import lexicon


@pytest.mark.parametrize(
    "word",
    ["astronaut", "endgame", "beckett", "recordings", "mice", "boxes", "running", "firetruck", "lightningbolt",
     "newpassword", "猫", "宇航员", "咖啡", "café"],
)
def test_words_with_a_meaning_are_known(word):
    assert lexicon.is_word(word)


@pytest.mark.parametrize("word", ["nagg", "nell", "xqzvbnm", "plorf", "img", "dsc", "哔叭"])
def test_made_up_words_and_names_are_not(word):
    assert not lexicon.is_word(word)


def test_wordnet_is_read_with_its_inflections():
    words = lexicon.english_words()
    assert words is not None and len(words) > 80_000  # one-word lemmas of WordNet 3.0
    assert "mouse" in lexicon.bases("mice") and "box" in lexicon.bases("boxes")


def test_without_wordnet_every_english_word_counts(tmp_path, monkeypatch):
    assert lexicon.english_words(tmp_path) is None
    monkeypatch.setattr(lexicon, "english_words", lambda: None)
    assert lexicon.is_word("nagg")  # nothing taken away where nothing can be checked
    assert not lexicon.is_word("哔叭")  # Chinese is still checked against jieba's dictionary
