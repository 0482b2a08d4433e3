"""The server's parts without a server: the job queue, the result store, the form parser and
the upload validation."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
pytest.importorskip("python_multipart", reason="the serve extra is not installed")

from speechlm.serve.jobs import Busy, Cancelled, Job, JobQueue, ResultStore  # noqa: E402
from speechlm.serve.uploads import HTTPError, Part, load_upload, parse_form  # noqa: E402


def _blocker():
    gate = threading.Event()
    started = threading.Event()

    def fn(job):
        started.set()
        assert gate.wait(10)
        return "unblocked"

    return fn, gate, started


@pytest.fixture
def queue():
    q = JobQueue(max_pending=2)
    yield q
    q.close()


def test_jobs_run_in_order_on_one_thread(queue):
    seen = []
    jobs = [queue.submit(Job(lambda job, i=i: seen.append((i, threading.current_thread().name))
                             or i, "t")) for i in range(2)]
    assert [j.future.result(5) for j in jobs] == [0, 1]
    assert [i for i, _ in seen] == [0, 1]
    assert {name for _, name in seen} == {"speechlm-serve-worker"}
    assert queue.stats()["done"] == 2


def test_a_full_queue_refuses_with_busy(queue):
    fn, gate, started = _blocker()
    running = queue.submit(Job(fn, "block"))
    assert started.wait(5)
    waiting = queue.submit(Job(lambda job: "second", "t"))
    assert queue.full() and queue.position(waiting) == 1
    with pytest.raises(Busy, match=r"busy: 2 jobs are waiting or running \(the limit is 2\); "
                       r"retry in about \d+ s") as err:
        queue.submit(Job(lambda job: "third", "t"))
    assert err.value.retry_after >= 1
    gate.set()
    assert running.future.result(5) == "unblocked" and waiting.future.result(5) == "second"
    assert queue.stats()["refused"] == 1
    queue.submit(Job(lambda job: "again", "t")).future.result(5)  # room again


def test_a_cancelled_waiting_job_never_runs(queue):
    fn, gate, started = _blocker()
    queue.submit(Job(fn, "block"))
    assert started.wait(5)
    ran = []
    job = queue.submit(Job(lambda job: ran.append(1), "t"))
    job.cancel()
    gate.set()
    with pytest.raises(Cancelled):
        job.future.result(5)
    assert not ran and queue.stats()["cancelled"] == 1


def test_a_running_job_stops_at_its_next_step(queue):
    steps = []
    started = threading.Event()

    def fn(job):
        for i in range(1000):
            job.step(f"step {i}", i, 1000)
            steps.append(i)
            started.set()
            time.sleep(0.01)
        return "finished"

    job = queue.submit(Job(fn, "long", 1000))
    assert started.wait(5)
    job.cancel()
    with pytest.raises(Cancelled):
        job.future.result(5)
    assert len(steps) < 1000


def test_progress_is_reported_to_listeners(queue):
    seen = []
    gate = threading.Event()

    def fn(job):
        assert gate.wait(5)
        job.step("half", 1, 2)
        return 1

    job = Job(fn, "t", 2)
    job.on_change(lambda: seen.append((job.progress.stage, job.progress.done)))
    queue.submit(job)
    gate.set()
    job.future.result(5)
    assert ("half", 1) in seen and ("started", 0) in seen


def test_a_failing_job_hands_its_exception_to_the_caller(queue):
    def fn(job):
        raise ValueError("bad option")

    with pytest.raises(ValueError, match="bad option"):
        queue.submit(Job(fn, "t")).future.result(5)
    assert queue.stats()["failed"] == 1
    assert queue.submit(Job(lambda job: 7, "t")).future.result(5) == 7  # the worker lives on


def test_close_cancels_what_waits():
    q = JobQueue(max_pending=3)
    fn, gate, started = _blocker()
    q.submit(Job(fn, "block"))
    assert started.wait(5)
    waiting = q.submit(Job(lambda job: 1, "t"))
    gate.set()
    q.close()
    assert waiting.future.done()
    with pytest.raises(RuntimeError, match="closed"):
        q.submit(Job(lambda job: 1, "t"))


def test_the_result_store_drops_the_oldest_past_its_bytes():
    s = ResultStore(max_bytes=10)
    a = s.put(b"123456", "audio/wav", "a.wav")
    b = s.put(b"7890", "audio/wav", "b.wav")
    assert s.get(a) == ("audio/wav", "a.wav", b"123456") and len(s) == 2
    c = s.put(b"xy", "application/jsonl", "c.jsonl")
    assert s.get(a) is None and s.get(b) is not None and s.get(c) is not None
    assert s.get("no-such-key") is None


def test_the_result_store_forgets_old_results():
    s = ResultStore(max_age=0.05)
    k = s.put(b"data", "audio/wav", "a.wav")
    assert s.get(k) is not None
    time.sleep(0.1)
    assert s.get(k) is None and len(s) == 0


BOUNDARY = "xYzBoUnDaRy"


def _form(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += (f"--{BOUNDARY}\r\nContent-Disposition: {disp}\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


def test_the_form_is_split_into_fields_and_files():
    form = parse_form(_form(("audio", "in.wav", b"RIFF\x00\r\n--x"), ("seed", None, b"3")), CTYPE)
    assert form["audio"].filename == "in.wav" and form["audio"].data == b"RIFF\x00\r\n--x"
    assert form["seed"].text == "3" and form["seed"].filename is None


@pytest.mark.parametrize("ctype,status,message", [
    ("application/json", 415, "send the request as multipart/form-data"),
    ("multipart/form-data", 415, "multipart/form-data"),  # no boundary
    (None, 415, "multipart/form-data"),
])
def test_other_bodies_are_refused(ctype, status, message):
    with pytest.raises(HTTPError, match=message) as err:
        parse_form(b"{}", ctype)
    assert err.value.status == status and err.value.code == "unsupported_media_type"


def test_a_form_with_too_many_parts_is_refused():
    body = _form(*[(f"f{i}", None, b"1") for i in range(40)])
    with pytest.raises(HTTPError, match="more than 16 fields") as err:
        parse_form(body, CTYPE)
    assert err.value.status == 400


def test_a_part_without_a_name_is_refused():
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n")
    with pytest.raises(HTTPError, match="has no name"):
        parse_form(body.encode(), CTYPE)


def _wav(tmp_path, samples: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> bytes:
    import soundfile as sf

    p = tmp_path / "x.wav"
    sf.write(p, samples, sr, subtype=subtype)
    return p.read_bytes()


def test_uploads_are_validated_as_the_cli_validates_and_deleted(tmp_path):
    priv = tmp_path / "private"
    priv.mkdir()
    wav = load_upload(Part("audio", "a.wav", None, _wav(tmp_path, np.full(8000, 0.1))), priv, 10)
    assert wav.shape == (8000,)
    for data, message in [
        (b"not audio at all", r"cannot read the upload 'audio' \(notes.txt\) as audio"),
        (_wav(tmp_path, np.zeros(100)), r"the upload 'audio' \(notes.txt\) is 6.2 ms long, "
         r"shorter than one analysis frame \(25.0 ms\)"),
        (_wav(tmp_path, np.array([0.1, np.nan] * 400), subtype="FLOAT"),
         r"the upload .audio. \(notes.txt\) contains NaN or infinite samples"),
        (b"", r"the upload 'audio' \(notes.txt\) is empty"),
    ]:
        with pytest.raises(HTTPError, match=message) as err:
            load_upload(Part("audio", "notes.txt", None, data), priv, 10)
        assert err.value.status == 422 and err.value.code == "bad_audio"
        assert str(priv) not in err.value.message
    with pytest.raises(HTTPError, match=r"is 3.0 s long; the limit is 2 s") as err:
        load_upload(Part("audio", "long.wav", None, _wav(tmp_path, np.full(24000, 0.1), 8000)),
                    priv, 2)
    assert err.value.status == 413 and err.value.code == "too_long"
    assert list(priv.iterdir()) == []  # every upload was deleted


def test_an_upload_name_never_becomes_a_path(tmp_path):
    priv = tmp_path / "private"
    priv.mkdir()
    with pytest.raises(HTTPError) as err:
        load_upload(Part("audio", "../../etc/passwd\n<x>", None, b"junk"), priv, 10)
    assert "(passwd__x_)" in err.value.message
    assert list(priv.iterdir()) == [] and not (tmp_path / "etc").exists()
