"""Open-vocabulary models from a local directory (issue 18), with tiny randomly initialised models of the real
architectures (CLIPModel, SiglipModel, ChineseCLIPModel, ClapModel; a tokenizer trained here on a few sentences),
saved in both layouts: the transformers one (save_pretrained) and an ONNX export. No real weights can be installed
here: these tests check loading, plumbing, fusion and removal, not quality.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

from polymodal import spaces  # noqa: E402
from polymodal.analysis import Analyzer  # noqa: E402
from polymodal.cli import main  # noqa: E402
from polymodal.collection import Collection  # noqa: E402
from polymodal.config import Settings  # noqa: E402
from polymodal.models import open_vocab  # noqa: E402
from polymodal.models.open_vocab import OpenVocabError, OpenVocabModel, detect_layout  # noqa: E402
from polymodal.search import Query  # noqa: E402

ARCHITECTURES = {"clip": "image-text", "siglip": "image-text", "chinese_clip": "image-text", "clap": "audio-text"}
SENTENCES = [
    "a photo of a cat on a sofa", "a dog barking in the park", "an astronaut in a space suit",
    "a cup of coffee on a table", "a red motorcycle", "the sound of a cow", "a rooster crowing at dawn",
    "a rocket launch", "flowers in a garden", "一只猫在沙发上", "一杯咖啡", "宇航员",
]  # fmt: skip
TEXT = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2}
VISION = {**TEXT, "image_size": 64, "patch_size": 16}
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
QUERIES = ["a woman in a space suit", "a dog barking", "a cup of coffee"]


# --- tiny models ---------------------------------------------------------------------------------------------
def _bpe(bos: str, eos: str, pad: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = list(dict.fromkeys([pad, bos, eos]))
    tokenizer.train_from_iterator(SENTENCES, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                                 initial_alphabet=alphabet))  # fmt: skip
    marks = [(t, tokenizer.token_to_id(t)) for t in (bos, eos)]
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{bos} $A {eos}", special_tokens=marks)
    return tokenizer


def _wordpiece():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    marks = [(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")]
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=marks)
    return tokenizer


def build_tiny(architecture: str, folder: Path) -> Path:
    """A randomly initialised model of the real architecture, saved as transformers saves it, with a README
    stating a licence (as Hugging Face model cards do)."""
    import torch
    import transformers

    torch.manual_seed(0)
    if architecture == "chinese_clip":
        tokenizer, (pad, bos, eos) = _wordpiece(), ("[PAD]", "[CLS]", "[SEP]")
    elif architecture == "clap":
        tokenizer, (pad, bos, eos) = _bpe("<s>", "</s>", "<pad>"), ("<pad>", "<s>", "</s>")
    else:
        special = ("<|endoftext|>", "<|startoftext|>", "<|endoftext|>")
        tokenizer, (pad, bos, eos) = _bpe(special[1], special[2], special[0]), special
    ids = {"pad_token_id": tokenizer.token_to_id(pad), "bos_token_id": tokenizer.token_to_id(bos),
           "eos_token_id": tokenizer.token_to_id(eos)}  # fmt: skip
    text = {**TEXT, **ids, "vocab_size": tokenizer.get_vocab_size()}
    image = {"do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
             "image_mean": CLIP_MEAN, "image_std": CLIP_STD}  # fmt: skip
    if architecture == "clip":
        config = transformers.CLIPConfig(text_config={**text, "max_position_embeddings": 77}, vision_config=VISION,
                                         projection_dim=16)  # fmt: skip
        model = transformers.CLIPModel(config)
        processor = {**image, "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 64},
                     "do_center_crop": True, "crop_size": {"height": 64, "width": 64}}  # fmt: skip
    elif architecture == "siglip":
        config = transformers.SiglipConfig(text_config={**text, "max_position_embeddings": 16}, vision_config=VISION)
        model = transformers.SiglipModel(config)
        processor = {**image, "image_processor_type": "SiglipImageProcessor", "size": {"height": 64, "width": 64},
                     "resample": 2, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}  # fmt: skip
    elif architecture == "chinese_clip":
        config = transformers.ChineseCLIPConfig(text_config={**text, "max_position_embeddings": 64},
                                                vision_config=VISION, projection_dim=16)  # fmt: skip
        model = transformers.ChineseCLIPModel(config)
        processor = {**image, "image_processor_type": "ChineseCLIPImageProcessor",
                     "size": {"height": 64, "width": 64}, "do_center_crop": False}  # fmt: skip
    else:
        audio = {"window_size": 8, "num_mel_bins": 64, "spec_size": 256, "patch_size": 4, "patch_stride": [4, 4],
                 "hidden_size": 32, "depths": [1, 1], "num_attention_heads": [2, 2], "patch_embeds_hidden_size": 16,
                 "projection_dim": 16, "num_hidden_layers": 2}  # fmt: skip
        config = transformers.ClapConfig(text_config={**text, "max_position_embeddings": 80, "projection_dim": 16},
                                         audio_config=audio, projection_dim=16)  # fmt: skip
        model = transformers.ClapModel(config)
        processor = transformers.ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad").to_dict()
    model.eval().save_pretrained(folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"pad_token": pad, "model_max_length": 77}))
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    (folder / "README.md").write_text(f"---\nlicense: mit\n---\nA tiny randomly initialised {architecture}.\n")
    return folder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(architecture, layout) -> directory, for the four architectures in both layouts (made once a session)."""
    root = tmp_path_factory.mktemp("open-vocab-models")
    made: dict[tuple[str, str], Path] = {}
    for architecture, kind in ARCHITECTURES.items():
        source = build_tiny(architecture, root / architecture)
        made[(architecture, "transformers")] = source
        made[(architecture, "onnx")] = open_vocab.export_onnx(source, root / f"{architecture}-onnx", kind).directory
    return made


@pytest.fixture(scope="session")
def base_store(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a small folder of real photos, recordings and a note, a store of it indexed by the bundled models)."""
    root = tmp_path_factory.mktemp("open-vocab-collection")
    folder = root / "media"
    folder.mkdir()
    for name in ("photos/astronaut.jpg", "photos/coffee.jpg", "photos/chelsea_cat.jpg", "sounds/dog.mp3",
                 "sounds/cow.mp3", "notes/coffee.md"):  # fmt: skip
        shutil.copy(samples / name, folder / Path(name).name)
    slides(folder / "slides.mp4", [samples / "photos" / "rocket.jpg", samples / "photos" / "coffee.jpg"])
    store = root / "store"
    with Collection(settings=Settings.from_env(store=store)) as collection:
        report = collection.index(folder)
    assert not report.errors, report.errors
    assert report.per_modality["video"] == 1
    return folder, store


def slides(target: Path, photos: list[Path], seconds: float = 1.5, fps: int = 5) -> Path:
    """A silent video showing each photo in turn (a hard cut between them: one shot each)."""
    import av
    from PIL import Image

    with av.open(str(target), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for photo in photos:
            frame = av.VideoFrame.from_image(Image.open(photo).convert("RGB").resize((320, 240)))
            for _ in range(int(seconds * fps)):
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return target


@pytest.fixture
def collection_dir(base_store: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """The indexed folder (not to be changed) and a copy of its store, for one test to change."""
    folder, store = base_store
    shutil.copytree(store, tmp_path / "store")
    return folder, tmp_path / "store"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network use: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _ranked(result) -> list[tuple[str, float, float | None]]:
    return [(h.path, h.score, h.similarity) for h in [*result.hits, *result.weaker]]


# --- loading ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_both_layouts_load_and_agree(architecture: str, tiny: dict, samples: Path, no_network: None) -> None:
    """Each layout is detected and loaded; the ONNX export's vectors match the transformers model's."""
    from polymodal.media.audio import decode_audio
    from polymodal.media.image import open_image

    kind = ARCHITECTURES[architecture]
    loaded = {}
    for layout in ("transformers", "onnx"):
        found = detect_layout(tiny[(architecture, layout)], kind)
        assert (found.layout, found.architecture) == (layout, architecture)
        loaded[layout] = OpenVocabModel(found)
    texts = ["a photo of a cat", "一只猫在沙发上", "a rooster crowing at dawn, loudly and often"]
    if kind == "image-text":
        media = [open_image(samples / "photos" / n, 10**8, draft_to=256) for n in ("astronaut.jpg", "coffee.jpg")]
        encode = "encode_images"
    else:
        rate = loaded["onnx"].sample_rate
        media = [decode_audio(samples / "sounds" / n, rate) for n in ("dog.mp3", "cow.mp3")]
        media.append(np.tile(media[0], 8))  # longer than CLAP's 10 s: windows
        encode = "encode_audio"
    for what, run in (("text", lambda m: m.encode_text(texts)), ("media", lambda m: getattr(m, encode)(media))):
        a, b = run(loaded["transformers"]), run(loaded["onnx"])
        assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
        assert (a * b).sum(axis=1).min() >= 0.999, (architecture, what)
    assert loaded["transformers"].id != loaded["onnx"].id
    assert open_vocab.licence(tiny[(architecture, "onnx")]) == "mit"


def test_a_vocabulary_without_tokenizer_json_is_read_by_transformers(tiny: dict, tmp_path: Path) -> None:
    """Chinese-CLIP's own repository ships a BERT vocab.txt, no tokenizer.json: transformers' tokenizer reads it,
    to the same ids (and vectors) as tokenizer.json gives."""
    from tokenizers import Tokenizer

    source = tiny[("chinese_clip", "transformers")]
    folder = tmp_path / "chinese-clip-vocab"
    shutil.copytree(source, folder)
    vocabulary = sorted(Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab().items(), key=lambda t: t[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocabulary), encoding="utf-8")
    (folder / "tokenizer.json").unlink()
    settings = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 77}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    with_json, with_vocabulary = (OpenVocabModel(detect_layout(f, "image-text")) for f in (source, folder))
    assert "tokenizer:vocab.txt" in with_vocabulary.layout.files
    texts = ["a photo of a cat", "一只猫在沙发上"]
    assert (with_json.tokenizer(texts)["input_ids"] == with_vocabulary.tokenizer(texts)["input_ids"]).all()
    assert (with_json.encode_text(texts) * with_vocabulary.encode_text(texts)).sum(axis=1).min() >= 0.9999


def test_missing_or_unsupported_files_are_named(tiny: dict, tmp_path: Path, capsys) -> None:
    clip, clip_onnx = tiny[("clip", "transformers")], tiny[("clip", "onnx")]
    cases = [
        (clip, "preprocessor_config.json", "image-text", "preprocessor_config.json"),
        (clip_onnx, "vision_model.onnx", "image-text", "vision_model.onnx"),
        (clip_onnx, "tokenizer.json", "image-text", "tokenizer.json"),
        (clip, "model.safetensors", "image-text", "safetensors"),
        (clip, None, "audio-text", "add it as `models add image-text"),
    ]
    for number, (source, missing, kind, named) in enumerate(cases):
        broken = tmp_path / f"case{number}"
        shutil.copytree(source, broken)
        if missing is not None:
            (broken / missing).unlink()
        with pytest.raises(OpenVocabError, match=named.replace(".", r"\.")):
            detect_layout(broken, kind)
    pickled = tmp_path / "pickled"
    shutil.copytree(clip, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(OpenVocabError, match="pickle"):
        detect_layout(pickled, "image-text")
    store = tmp_path / "store"
    code = main(["models", "add", "image-text", str(tmp_path / "case0"), "--store", str(store)])
    assert code == 2
    assert "preprocessor_config.json" in capsys.readouterr().err
    assert main(["models", "add", "image-text", str(tmp_path / "nowhere"), "--store", str(store)]) == 2


# --- a collection with spaces ----------------------------------------------------------------------------------
def test_add_index_search_remove(tiny: dict, collection_dir: tuple[Path, Path], samples: Path,
                                 monkeypatch: pytest.MonkeyPatch, no_network: None, capsys) -> None:  # fmt: skip
    folder, store = collection_dir
    settings = Settings.from_env(store=store)
    with Collection(settings=settings) as collection:
        before = {q: _ranked(collection.search(q)) for q in QUERIES}
        similar_before = _ranked(collection.similar(str(folder / "astronaut.jpg")))

    def bundled_models_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a bundled model ran")

    with pytest.MonkeyPatch.context() as patch:
        for name in ("finish_images", "finish_audio", "analyze_file", "perceive_image", "perceive_audio"):
            patch.setattr(Analyzer, name, bundled_models_run)
        add = ["models", "add", "--store", str(store), "--json"]
        assert main([*add, "image-text", str(tiny[("clip", "transformers")])]) == 0
        image_text = json.loads(capsys.readouterr().out)
        assert (image_text["embedded"], image_text["licence"], image_text["errors"]) == (4, "mit", [])  # + video
        assert main([*add, "audio-text", str(tiny[("clap", "onnx")])]) == 0
        assert json.loads(capsys.readouterr().out)["embedded"] == 2
        with Collection(settings=settings) as collection:
            report = collection.index(folder)  # nothing new: nothing perceived, nothing embedded again
            assert report.outcomes == {"unchanged": 7} and not report.errors
            found = spaces.spaces_of(collection.store, settings)
            kinds = [(s.kind, s.source) for s in found]
            assert kinds == [("image-text", "collection"), ("audio-text", "collection")]
            assert [spaces.item_count(collection.store, s) for s in found] == [4, 2]
            video = collection.store.files_under(str(folder / "slides.mp4"))[0].sha
            assert collection.store.feature(video, found[0].feature_key).shape == (2 * 16,)  # a row per shot

    more = store.parent / "more"
    more.mkdir()
    shutil.copy(samples / "photos" / "rocket.jpg", more / "rocket.jpg")  # a new photo: perceived and embedded
    with Collection(settings=settings) as collection:
        report = collection.index(folder, more)
        assert report.outcomes == {"analyzed": 1, "unchanged": 7}, report.outcomes
        assert spaces.item_count(collection.store, found[0]) == 5
        fused = collection.searcher().scored(Query("a woman in a space suit"))
        standing = {s.row.path.rsplit("/", 1)[-1]: s.candidate.open for s in fused}
        assert standing["coffee.md"] == 0.0  # a text is in neither space
        assert max(v for n, v in standing.items() if n.endswith(".jpg")) > 0  # images stand out in image-text
        assert max(v for n, v in standing.items() if n.endswith(".mp3")) > 0  # recordings in audio-text
        results = {q: collection.search(q) for q in QUERIES}
        with_spaces = {q: _ranked(result) for q, result in results.items()}
        assert any(with_spaces[q] != before[q] for q in QUERIES)  # rankings fused from both spaces
        said = [e.text for r in results.values() for h in [*r.hits, *r.weaker] for e in h.why if e.kind == spaces.OPEN]
        assert said and all("standard deviations above the mean" in text for text in said)  # the hits say why
        assert collection.similar(str(folder / "astronaut.jpg")).hits
        for media, name in ((Query(image=folder / "coffee.jpg"), "coffee.jpg"), (Query(audio=folder / "cow.mp3"),
                                                                                 "cow.mp3")):  # fmt: skip
            by_example = collection.searcher().scored(media)  # the query's own vector: the most standing
            best = max(by_example, key=lambda s: s.candidate.open)
            assert best.row.path.endswith(name) and best.candidate.open > 0
        slide = next(s for s in collection.searcher().scored(Query(image=folder / "coffee.jpg"))
                     if s.row.path.endswith("slides.mp4"))  # fmt: skip
        assert slide.candidate.open.shot == 1  # the video's second shot shows the coffee
        said = spaces.evidence(slide.candidate.open)[0]
        assert (said.page, said.start is not None, "(shot 2)" in said.text) == (1, True, True)

    assert main(["models", "list", "--store", str(store), "--json"]) == 0
    listed = {row["kind"]: row for row in json.loads(capsys.readouterr().out)["models"]}
    assert listed["image-text"]["id"].startswith("clip-transformers-") and listed["image-text"]["items"] == 5
    assert listed["audio-text"]["id"].startswith("clap-onnx-") and listed["text"]["source"] == "bundled"

    for kind in ("image-text", "audio-text"):
        assert main(["models", "remove", kind, "--store", str(store)]) == 0
    with Collection(settings=settings) as collection:
        assert spaces.spaces_of(collection.store, settings) == []
        assert collection.store.feature(collection.store.files_under(str(folder))[0].sha, found[0].feature_key) is None
        collection.remove(str(more / "rocket.jpg"))
        after = {q: _ranked(collection.search(q)) for q in QUERIES}
        assert after == before  # exactly today's behaviour again
        assert _ranked(collection.similar(str(folder / "astronaut.jpg"))) == similar_before


def test_changed_files_are_refused(tiny: dict, collection_dir: tuple[Path, Path], tmp_path: Path) -> None:
    _, store = collection_dir
    model = tmp_path / "siglip"
    shutil.copytree(tiny[("siglip", "onnx")], model)
    settings = Settings.from_env(store=store)
    with Collection(settings=settings) as collection:
        first = spaces.add_space(collection.store, settings, "image-text", model)
        assert spaces.embed_space(collection.store, settings, first)["embedded"] == 4
        assert collection.search("a cat").hits is not None
        with open(model / "tokenizer.json", "a") as handle:
            handle.write("\n")
        with pytest.raises(OpenVocabError, match="tokenizer.json"):
            collection.search("a cat")
        again = spaces.add_space(collection.store, settings, "image-text", model)  # what the message asks for
        assert again.model_id != first.model_id and spaces.item_count(collection.store, first) == 0  # old ones gone
        assert spaces.embed_space(collection.store, settings, again)["embedded"] == 4
        assert collection.search("a cat").hits is not None


def test_a_setting_names_the_model_and_classify_uses_it(tiny: dict, samples: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from polymodal.tasks.classify import classify

    monkeypatch.setenv("POLYMODAL_MODEL_PATH_IMAGE_TEXT", str(tiny[("chinese_clip", "transformers")]))
    settings = Settings.from_env(store=tmp_path / "no-store")
    assert settings.model_paths["image-text"] == str(tiny[("chinese_clip", "transformers")])
    space = spaces.space_for_settings(settings, "image-text")
    assert space is not None and space.source == "setting" and space.model_id.startswith("chinese-clip-")
    result = classify(Analyzer(settings), samples / "photos" / "chelsea_cat.jpg", ["cat", "猫", "rocket"])
    assert result.evidence[0].kind == "model" and space.model_id in result.evidence[0].text
    assert abs(sum(s.score for s in result.scores) - 1.0) < 1e-5 and not result.warnings
    assert f"scores from the open-vocabulary model {space.model_id}" in result.to_text()


def test_the_cli_knows_the_same_kinds() -> None:
    from polymodal import cli_models
    from polymodal.models import open_vocab

    assert cli_models.KINDS == open_vocab.KINDS
