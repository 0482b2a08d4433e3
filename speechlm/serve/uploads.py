"""Uploads: read a bounded request body, split its multipart form, validate the audio.

The body is read into memory up to ``max_bytes`` (refused with 413 past it, or at once when the
``Content-Length`` says so) within ``timeout`` seconds (408 after it), so a slow or vanished
client holds no worker and no disk. The form is parsed in memory by python-multipart. Audio is
validated exactly as the command line validates it: written under the server's private
temporary folder (mode 0700, under a random name), checked for duration from its header, read
with :func:`speechlm.audio.load_audio` (mono, 16 kHz, at least one analysis frame, finite), and
deleted at once, whatever happens.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from pathlib import Path

import anyio
import torch
from python_multipart.multipart import MultipartParser, parse_options_header

from speechlm.audio import FRAME_SIZE, SAMPLE_RATE, AudioReader, load_audio
from speechlm.errors import AudioError

MAX_PARTS = 16  # form fields + files in one request
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aiff", ".aif", ".au"}


class HTTPError(Exception):
    """A refusal: HTTP ``status``, a short machine ``code`` and a one-line ``message``."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@dataclasses.dataclass
class Part:
    """One field of a multipart form."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _limit(n: int) -> str:
    return f"{n / 2**20:g} MB ({n:,} bytes)"


async def read_body(request, max_bytes: int, timeout: float) -> bytes:
    """The request body, refused past ``max_bytes`` (413) or ``timeout`` seconds (408)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPError(400, "bad_request", "the Content-Length header is not a number")
        if int(declared) > max_bytes:
            raise HTTPError(413, "too_large", f"the upload is {int(declared):,} bytes; the limit "
                            f"is {_limit(max_bytes)} per request: send a shorter or compressed "
                            "file")
    chunks, size = [], 0
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPError(413, "too_large", f"the upload is larger than the limit of "
                                    f"{_limit(max_bytes)} per request: send a shorter or "
                                    "compressed file")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPError(408, "timeout", f"the upload took longer than {timeout:g} s; send it "
                        "again on a faster connection or send a smaller file") from None
    return b"".join(chunks)


def parse_form(body: bytes, content_type: str | None) -> dict[str, Part]:
    """Split a ``multipart/form-data`` body into its parts (by field name; the last wins)."""
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise HTTPError(415, "unsupported_media_type",
                        "send the request as multipart/form-data (an HTML form, or curl -F "
                        "audio=@file.wav)")
    parts: list[dict] = []
    cur = {"field": b"", "value": b""}

    def on_part_begin():
        if len(parts) >= MAX_PARTS:
            raise HTTPError(400, "bad_request", f"the form has more than {MAX_PARTS} fields")
        parts.append({"headers": {}, "data": []})

    def on_header_field(data, start, end):
        cur["field"] += data[start:end]

    def on_header_value(data, start, end):
        cur["value"] += data[start:end]

    def on_header_end():
        parts[-1]["headers"][cur["field"].decode("latin-1").lower()] = cur["value"]
        cur["field"], cur["value"] = b"", b""

    def on_part_data(data, start, end):
        parts[-1]["data"].append(data[start:end])

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data})
    try:
        parser.write(body)
        parser.finalize()
    except HTTPError:
        raise
    except Exception as err:  # python-multipart's errors for a malformed body
        raise HTTPError(400, "bad_request", f"the multipart form is malformed: {err}") from None
    out = {}
    for p in parts:
        header = p["headers"]
        _, disp = parse_options_header(header.get("content-disposition", b""))
        if b"name" not in disp:
            raise HTTPError(400, "bad_request", "a form part has no name")
        name = disp[b"name"].decode("utf-8", errors="replace")
        filename = disp.get(b"filename")
        ctype = header.get("content-type")
        out[name] = Part(name, None if filename is None else filename.decode("utf-8", "replace"),
                         None if ctype is None else ctype.decode("latin-1"), b"".join(p["data"]))
    return out


def _label(part: Part) -> str:
    """How an error names the upload: the field and the file's base name (never a path)."""
    if part.filename:
        base = re.sub(r"[^\w.\- ]", "_", os.path.basename(part.filename.replace("\\", "/")))[:80]
        return f"the upload '{part.name}' ({base})"
    return f"the upload '{part.name}'"


def load_upload(part: Part, tmpdir: Path, max_seconds: float) -> torch.Tensor:
    """Validate an uploaded audio file as the CLI does; returns ``[T]`` float32 at 16 kHz.

    Raises:
        HTTPError: 413 when longer than ``max_seconds``; 422 for what ``load_audio`` refuses
            (not audio, empty, non-finite, shorter than one frame), with its message.
    """
    label = _label(part)
    if not part.data:
        raise HTTPError(422, "bad_audio", f"{label} is empty; give a wav, flac or ogg file")
    suffix = Path(part.filename or "").suffix.lower()
    path = tmpdir / f"upload-{secrets.token_hex(8)}{suffix if suffix in AUDIO_SUFFIXES else ''}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(part.data)
        try:
            with AudioReader(path) as reader:
                seconds = reader.duration
            if seconds > max_seconds:
                raise HTTPError(413, "too_long", f"{label} is {seconds:.1f} s long; the limit "
                                f"is {max_seconds:g} s: cut it shorter")
            return load_audio(path, SAMPLE_RATE, min_samples=FRAME_SIZE)
        except AudioError as err:
            raise HTTPError(422, "bad_audio", str(err).replace(str(path), label)) from None
    finally:
        path.unlink(missing_ok=True)


async def load_upload_async(part: Part, tmpdir: Path, max_seconds: float,
                            limiter: anyio.CapacityLimiter) -> torch.Tensor:
    """:func:`load_upload` on a worker thread of ``limiter`` (decoding is CPU work)."""
    return await anyio.to_thread.run_sync(load_upload, part, tmpdir, max_seconds,
                                          limiter=limiter)


__all__ = ["HTTPError", "Part", "load_upload", "load_upload_async", "parse_form", "read_body"]
