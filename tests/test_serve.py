"""``speechlm serve``'s JSON API against a live server on 127.0.0.1: every operation and every
refusal, cancellation of requests whose client went away, and the CLI command."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import speechlm

pytest.importorskip("starlette", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")

from speechlm.serve.app import ServeConfig, build_engine, create_app, serve_in_thread  # noqa: E402
from speechlm.serve.jobs import Job  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "flite_slt_arctic_a0004.wav"
VOICE = Path(__file__).resolve().parents[1] / "samples" / "espeak_us_f2_arctic_a0004.wav"
# max_seconds above the default's 20: the bundled LM's context (255 phone-rate units, ~22 s)
# holds any 20 s continuation, and one test asks for more than it holds
CONFIG = ServeConfig(max_upload_bytes=1 * 2**20, max_audio_seconds=10.0, max_pending=2,
                     max_samples=3, upload_timeout_s=1.5, max_seconds=30.0)


@pytest.fixture(scope="module")
def engine():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_engine("default", judges=False, config=CONFIG)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def server(engine):
    app = create_app(engine, CONFIG)
    with serve_in_thread(app) as url:
        yield url, app.state.server
    assert not app.state.server.tmpdir.exists()  # the private folder is removed at shutdown


# ------------------------------------------------------------------------------ client

def multipart(fields: dict[str, str] | None = None,
              files: dict[str, tuple[str, bytes]] | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in (fields or {}).items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                  f"{v}\r\n".encode())
    for k, (name, data) in (files or {}).items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; '
                  f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def request(url: str, data: bytes | None = None, ctype: str | None = None,
            timeout: float = 60) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype} if ctype else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def post(base: str, op: str, fields=None, files=None, stream=False):
    body, ctype = multipart({k: str(v) for k, v in (fields or {}).items()}, files)
    status, headers, data = request(f"{base}/api/{op}{'?stream=1' if stream else ''}", body,
                                    ctype)
    if stream and status == 200:
        return status, headers, [json.loads(x) for x in data.decode().splitlines()]
    return status, headers, json.loads(data)


def sample_file(path: Path = SAMPLE) -> tuple[str, bytes]:
    return path.name, path.read_bytes()


def wav_file(samples: np.ndarray, sr: int = 16000, subtype: str = "PCM_16",
             name: str = "x.wav") -> tuple[str, bytes]:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format="WAV", subtype=subtype)
    return name, buf.getvalue()


def fetch_wav(base: str, url: str) -> tuple[np.ndarray, int, dict]:
    status, headers, data = request(base + url)
    assert status == 200 and headers["Content-Type"] == "audio/wav" and data[:4] == b"RIFF"
    x, sr = sf.read(io.BytesIO(data), dtype="float32")
    return x, sr, headers


def wait_for(cond, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


# ------------------------------------------------------------------------------ operations

def test_info_names_the_model_limits_and_queue(server):
    base, _ = server
    status, _, data = request(base + "/api/info")
    info = json.loads(data)
    assert status == 200
    bundled = json.loads((Path(speechlm.__file__).parent / "pretrained/whisper-phone/config.json")
                         .read_text())["unit_space"]
    assert info["model"]["unit_space"] == bundled and bundled.startswith("wphone-")
    assert info["model"]["sample_rate"] == 16000 and info["model"]["lm_context_units"] == 255
    assert info["model"]["judges"]["available"] is False
    assert info["limits"]["max_upload_bytes"] == 2**20 and info["limits"]["max_pending"] == 2
    assert set(info["queue"]) >= {"waiting", "running", "done", "refused", "cancelled"}


def test_the_page_and_its_files_are_served(server):
    base, _ = server
    status, headers, html = request(base + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'id="file"' in html and b"/static/app.js" in html
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        status, headers, body = request(f"{base}/static/{name}")
        assert status == 200 and kind in headers["content-type"] and len(body) > 1000


def test_analyze_gives_units_and_a_view(server, engine):
    base, _ = server
    status, _, res = post(base, "analyze", files={"audio": sample_file()})
    assert status == 200 and res["kind"] == "analyze"
    expected = engine.model.tokenize(SAMPLE)  # what `speechlm tokenize --dedup` gives
    assert res["units"]["ids"] == expected.ids.tolist()
    assert res["units"]["durations"] == expected.durations.tolist()
    assert res["units"]["format"] == "speechlm.units" and res["units"]["dedup"] is True
    assert abs(res["seconds"] - sf.info(SAMPLE).duration) < 1e-3
    env, spec = res["view"]["envelope"], res["view"]["spectrogram"]
    assert len(env["min"]) == len(env["max"]) == 600
    assert all(lo <= hi for lo, hi in zip(env["min"], env["max"]))
    import base64

    assert len(base64.b64decode(spec["data"])) == spec["frames"] * spec["n_mels"]
    assert spec["frames"] == pytest.approx(res["seconds"] * spec["frame_rate"], abs=2)
    status, headers, body = request(base + res["units_url"])
    assert status == 200 and json.loads(body.decode().splitlines()[0]) == res["units"]


def test_continue_returns_playable_wavs_equal_to_the_library(server, engine):
    base, _ = server
    fields = {"seconds": 2, "seed": 5, "num_samples": 2, "temperature": 0.9, "top_p": 0.95,
              "top_k": 50, "repetition_penalty": 1.1}
    status, _, res = post(base, "continue", fields, {"audio": sample_file()})
    assert status == 200, res
    assert res["kind"] == "continue" and len(res["samples"]) == 2
    assert res["options"] == {**fields, "seconds": 2.0}
    assert res["prompt"]["seconds"] == pytest.approx(3.355, abs=1e-3)
    for i, s in enumerate(res["samples"]):
        assert s["index"] == i + 1 and s["seed"] == 5 + i and s["judge"] is None
        x, sr, headers = fetch_wav(base, s["wav_url"])
        assert sr == 16000 and len(x) / sr == pytest.approx(s["seconds"], abs=1e-3)
        assert 0 < s["prompt_seconds"] < s["seconds"]
        ref = engine.model.continue_audio(SAMPLE, seconds=2, seed=5 + i, temperature=0.9,
                                          top_p=0.95, top_k=50, repetition_penalty=1.1)
        assert np.abs(x - ref.waveform.numpy()).max() <= 1.5 / 32768  # 16-bit PCM
        assert s["units"]["ids"] == ref.generated_units.ids.tolist()
        status, headers, body = request(base + s["units_url"] + "?download=1")
        recs = [json.loads(x) for x in body.decode().splitlines()]
        assert headers["Content-Disposition"].startswith("attachment; filename=")
        assert [r["name"] for r in recs] == ["prompt", f"sample-{i + 1}"]
        assert recs[1]["seed"] == 5 + i and recs[1]["ids"] == s["units"]["ids"]


def test_continue_streams_progress_then_the_result(server):
    base, _ = server
    status, headers, events = post(base, "continue", {"seconds": 1, "seed": 0, "num_samples": 2},
                                   {"audio": sample_file()}, stream=True)
    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "result" and "progress" in kinds
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert "sampling continuation 2 of 2" in stages
    assert all(e["total"] == 2 for e in events if e["event"] == "progress")
    assert len(events[-1]["result"]["samples"]) == 2


def test_resynth_and_convert(server, engine):
    base, _ = server
    status, _, res = post(base, "resynth", files={"audio": sample_file()})
    assert status == 200 and res["kind"] == "resynth" and res["no_f0"] is False
    x, sr, _ = fetch_wav(base, res["wav_url"])
    assert abs(len(x) / sr - sf.info(SAMPLE).duration) < 0.05
    status, _, conv = post(base, "convert", {"no_f0": 1},
                           {"audio": sample_file(), "voice": sample_file(VOICE)})
    assert status == 200 and conv["kind"] == "convert" and conv["no_f0"] is True
    y, _, _ = fetch_wav(base, conv["wav_url"])
    assert conv["units"]["ids"] == res["units"]["ids"]  # same words, another voice
    assert len(y) == len(x) and np.abs(y - x).max() > 0.05


# ------------------------------------------------------------------------------ refusals

def refused(res: tuple, status: int, code: str, message: str) -> None:
    got_status, _, body = res
    assert got_status == status, body
    assert body["status"] == status and body["code"] == code
    assert message in body["error"], body["error"]


@pytest.mark.parametrize("field,value,message", [
    ("seconds", "0", "seconds: must be in (0, 30], got 0"),
    ("seconds", "nan", "seconds: expected a finite number in (0, 30], got 'nan'"),
    ("seconds", "31", "seconds: must be in (0, 30], got 31"),
    ("temperature", "-1", "temperature: must be in [0, 100], got -1"),
    ("top_p", "0", "top_p: must be in (0, 1], got 0"),
    ("top_p", "1.5", "top_p: must be in (0, 1], got 1.5"),
    ("top_k", "0", "top_k: must be >= 1, got 0"),
    ("top_k", "2.5", "top_k: expected an integer >= 1, got '2.5'"),
    ("repetition_penalty", "0", "repetition_penalty: must be in (0, 100], got 0"),
    ("num_samples", "4", "num_samples: must be in [1, 3], got 4"),
    ("seed", str(2**63), "seed: must be in"),
    ("judge", "maybe", "judge: expected 1/0 (true/false), got 'maybe'"),
    ("colour", "red", "unknown field 'colour'; this operation takes audio, judge, num_samples"),
])
def test_bad_sampling_fields_are_refused(server, field, value, message):
    base, srv = server
    before = srv.queue.stats()["submitted"]
    refused(post(base, "continue", {field: value}, {"audio": sample_file()}), 400,
            "bad_field" if field != "colour" else "bad_field", message)
    assert srv.queue.stats()["submitted"] == before  # refused before any model work


def test_seed_plus_samples_past_the_largest_seed_is_refused(server):
    base, _ = server
    refused(post(base, "continue", {"seed": 2**63 - 1, "num_samples": 2},
                 {"audio": sample_file()}), 400, "bad_field",
            f"seed {2**63 - 1} + num_samples 2 runs past the largest seed")


def test_a_continuation_longer_than_the_context_is_refused(server):
    base, _ = server
    refused(post(base, "continue", {"seconds": 25}, {"audio": sample_file()}), 400,
            "bad_request", "does not fit the LM's context of 255 units")


@pytest.mark.parametrize("op,files,message", [
    ("analyze", {}, "no 'audio' file in the form"),
    ("continue", {}, "no 'audio' file in the form"),
    ("resynth", {}, "no 'audio' file in the form"),
    ("convert", {"audio": sample_file()}, "no 'voice' file in the form"),
])
def test_a_missing_file_is_refused(server, op, files, message):
    base, _ = server
    refused(post(base, op, {}, files), 400, "missing_field", message)


@pytest.mark.parametrize("op", ["analyze", "continue", "resynth", "convert"])
@pytest.mark.parametrize("upload,message", [
    (("notes.txt", b"hello, not audio"),
     "cannot read the upload 'audio' (notes.txt) as audio"),
    (("empty.wav", b""), "the upload 'audio' (empty.wav) is empty"),
    (wav_file(np.zeros(100), name="short.wav"),
     "the upload 'audio' (short.wav) is 6.2 ms long, shorter than one analysis frame"),
    (wav_file(np.array([0.1, np.inf] * 800), subtype="FLOAT", name="inf.wav"),
     "the upload 'audio' (inf.wav) contains NaN or infinite samples"),
])
def test_bad_audio_is_refused_as_the_cli_refuses_it(server, op, upload, message):
    base, srv = server
    files = {"audio": upload} if op != "convert" else {"audio": upload, "voice": sample_file()}
    refused(post(base, op, {}, files), 422, "bad_audio", message)
    assert list(srv.tmpdir.iterdir()) == []


def test_a_bad_voice_is_refused(server):
    base, _ = server
    refused(post(base, "convert", {}, {"audio": sample_file(), "voice": ("v.ogg", b"OggS junk")}),
            422, "bad_audio", "cannot read the upload 'voice' (v.ogg) as audio")


def test_silence_is_refused_where_the_cli_refuses_it(server):
    base, _ = server
    silent = wav_file(np.zeros(16000), name="silent.wav")
    refused(post(base, "continue", {"seconds": 1}, {"audio": silent}), 422, "bad_audio",
            "the prompt is silent (peak below -60 dBFS); give speech")
    refused(post(base, "resynth", {}, {"audio": silent}), 422, "bad_audio",
            "the audio is silent (peak below -80 dBFS)")
    status, _, res = post(base, "analyze", {}, {"audio": silent})  # silence has units
    assert status == 200 and len(res["units"]["ids"]) >= 1


def test_a_recording_past_the_duration_limit_is_refused(server):
    base, _ = server
    long = wav_file(np.full(8000 * 12, 0.1), sr=8000, name="long.wav")  # 12 s, 192 kB
    refused(post(base, "analyze", {}, {"audio": long}), 413, "too_long",
            "the upload 'audio' (long.wav) is 12.0 s long; the limit is 10 s: cut it shorter")


def test_a_body_past_the_size_limit_is_refused_before_it_is_read(server):
    base, _ = server
    _, ctype = multipart()
    head = (f"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {2**20 + 1}\r\n\r\n")
    status, body = _raw(base, head, [])  # the answer comes without sending the body
    assert status == 413 and body["code"] == "too_large"
    assert body["error"] == "the upload is 1,048,577 bytes; the limit is 1 MB (1,048,576 " \
        "bytes) per request: send a shorter or compressed file"


def _raw(base: str, head: str, chunks: list[bytes], delay: float = 0.0) -> tuple[int, dict]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(head.encode())
        for c in chunks:
            s.sendall(c)
            time.sleep(delay)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            got = s.recv(65536)
            if not got:
                break
            data += got
    head_, _, body = data.partition(b"\r\n\r\n")
    return int(head_.split()[1]), json.loads(body)


def test_a_chunked_body_past_the_limit_is_refused_while_it_arrives(server):
    base, _ = server
    _, ctype = multipart()
    head = (f"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"\0" * 2**18
    chunks = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 5
    status, body = _raw(base, head, chunks)
    assert status == 413 and body["code"] == "too_large"


def test_a_client_that_stalls_mid_upload_is_cut_off(server):
    base, _ = server
    _, ctype = multipart()
    head = (f"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            "Content-Length: 100000\r\n\r\n")
    t0 = time.monotonic()
    status, body = _raw(base, head, [b"--x\r\n"])  # then nothing
    assert status == 408 and body["code"] == "timeout"
    assert "the upload took longer than 1.5 s" in body["error"]
    assert time.monotonic() - t0 < 10


def test_other_bodies_and_routes_are_refused(server):
    base, _ = server
    status, _, body = request(base + "/api/analyze", b'{"audio": 1}', "application/json")
    assert status == 415 and json.loads(body)["code"] == "unsupported_media_type"
    status, _, body = request(base + "/api/nothing")
    assert status == 404 and json.loads(body)["code"] == "not_found"
    status, _, body = request(base + "/api/continue")  # GET
    assert status == 405
    status, _, body = request(base + "/api/results/not-a-key")
    assert status == 404 and "no such result" in json.loads(body)["error"]


def _block(srv):
    gate, started = threading.Event(), threading.Event()

    def fn(job):
        started.set()
        assert gate.wait(30)

    srv.queue.submit(Job(fn, "test-block"))
    assert started.wait(10)
    return gate


def test_past_the_queue_bound_requests_are_told_busy_retry(server):
    base, srv = server
    gate = _block(srv)
    try:
        srv.queue.submit(Job(lambda job: None, "test-fill"))  # 2 of 2: the queue is full
        status, headers, body = post(base, "continue", {}, {"audio": sample_file()})
        assert status == 503 and body["code"] == "busy"
        assert body["error"].startswith("busy: 2 jobs are waiting or running (the limit is 2)")
        assert int(headers["Retry-After"]) >= 1
    finally:
        gate.set()
    wait_for(lambda: srv.queue.pending == 0)
    status, _, _ = post(base, "analyze", {}, {"audio": sample_file()})
    assert status == 200


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_whose_client_goes_away_is_cancelled(server, stream):
    base, srv = server
    gate = _block(srv)  # the request below waits behind this job
    try:
        before = srv.queue.stats()
        body, ctype = multipart({"seconds": "2"}, {"audio": sample_file()})
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/api/continue" + ("?stream=1" if stream else ""), body,
                     {"Content-Type": ctype})
        wait_for(lambda: srv.queue.stats()["submitted"] == before["submitted"] + 1)
        if stream:  # the first event says it is queued
            r = conn.getresponse()
            assert json.loads(r.readline())["event"] == "queued"
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        time.sleep(0.6)
    finally:
        gate.set()
    wait_for(lambda: srv.queue.pending == 0)
    after = srv.queue.stats()
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["done"] == before["done"] + 1  # only the blocking job ran


def test_concurrent_requests_within_the_bound_all_succeed(server):
    base, _ = server
    results = []

    def one():
        results.append(post(base, "analyze", {}, {"audio": sample_file()})[0])

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [200, 200]


def test_uploads_leave_nothing_behind(server):
    base, srv = server
    assert srv.tmpdir.is_dir() and (srv.tmpdir.stat().st_mode & 0o777) == 0o700
    assert list(srv.tmpdir.iterdir()) == []


def test_the_judges_show_a_transcript_and_a_similarity(engine):
    pytest.importorskip("faster_whisper", reason="the eval extra is not installed")
    pytest.importorskip("resemblyzer", reason="the eval extra is not installed")
    from speechlm.serve.engine import Engine

    judged = Engine(engine.model, engine.store, judges=True)
    if not judged.judges_ok:
        pytest.skip(judged.judges_note)
    app = create_app(judged, CONFIG)
    with serve_in_thread(app) as base:
        status, _, res = post(base, "resynth", {"judge": 1}, {"audio": sample_file()})
        assert status == 200, res
        # the bundled MFCC units resynthesize words Whisper mostly mishears: words, not these words
        assert len(res["judge"]["transcript"].split()) >= 2, res["judge"]
        assert 0.5 < res["judge"]["speaker_similarity"] <= 1.0
        status, _, res = post(base, "resynth", {"judge": 0}, {"audio": sample_file()})
        assert res["judge"] is None
        status, _, info = request(base + "/api/info")
        assert json.loads(info)["model"]["judges"]["available"] is True


# ------------------------------------------------------------------------------ the command

def test_the_command_refuses_a_busy_port_before_loading_anything(capsys):
    from speechlm.cli import main

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
        t0 = time.monotonic()
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "pick another --port" in err
    assert time.monotonic() - t0 < 5


def test_the_command_validates_its_flags(capsys):
    from speechlm.cli import main

    for argv, message in [
            (["--port", "70000"], "argument --port: must be in [0, 65535], got 70000"),
            (["--max-pending", "0"], "argument --max-pending: must be in [1, 64]")]:
        with pytest.raises(SystemExit) as exit_:
            main(["serve", *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_command_serves_until_interrupted(tmp_path):
    import signal
    import subprocess
    import sys

    env = {**os.environ, "SPEECHLM_THREADS": "1"}
    # a terminal's Ctrl-C: SIGINT at its default even when the suite runs as a background job
    # (which inherits SIGINT ignored, and so would the server: it then exits 0)
    p = subprocess.Popen([sys.executable, "-m", "speechlm", "serve", "--port", "0", "--no-judges",
                          "-q"], stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = p.stderr.readline()
        assert line.startswith("speechlm: serving on http://127.0.0.1:"), line
        base = line.split()[3].rstrip("/")
        status, _, body = request(base + "/api/info")
        assert status == 200 and json.loads(body)["model"]["judges"]["available"] is False
        p.send_signal(signal.SIGINT)  # Ctrl-C: the CLI's exit code for an interruption
        assert p.wait(15) == 130
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
