"""Run the Space as a child process on a free local port, for tests and benchmarks.

    with running_space(env={"FASHREC_INDEX": "runs/hm-index"}) as url:
        Client(url).predict(api_name="/recommend_item")

The child is exactly what users run (``python space/app.py``, with ``GRADIO_SERVER_PORT``), offline
(``HF_HUB_OFFLINE=1``), with this checkout's ``fashrec`` first on its path (as the tests that start it
import it), whatever fashrec the interpreter has installed. Readiness is a condition, not a guess: the parent polls the URL every 0.1 s
(``threading.Event().wait``) until it answers, the child dies, or the deadline passes.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping

APP = Path(__file__).resolve().parent / "app.py"
CHECKOUT = APP.parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_space(*, env: Mapping[str, str] | None = None, timeout: float = 180.0,
                  log: str | os.PathLike | None = None, app: str | os.PathLike = APP,
                  python: str | os.PathLike = sys.executable) -> Iterator[str]:
    """Start ``app`` (default ``space/app.py``) with ``python`` in its own folder, as a Space runs it, on a
    free port; yield its URL once it answers, stop it on exit.

    Raises RuntimeError with the child's output if it exits or does not answer within ``timeout`` s.
    """
    port = free_port()
    app = Path(app).resolve()
    first = [str(CHECKOUT)] if app == APP else []  # another app (a built Space) runs the fashrec it installed
    python_path = os.pathsep.join(p for p in (*first, os.environ.get("PYTHONPATH")) if p)
    child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                 "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "PYTHONPATH": python_path,
                 **(env or {})}
    log_file = open(log, "w+b") if log else tempfile.TemporaryFile()
    proc = subprocess.Popen([str(python), str(app)], env=child_env, cwd=app.parent, stdout=log_file,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_answers(url, proc, log_file, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def _wait_until_answers(url: str, proc: subprocess.Popen, log_file, timeout: float) -> None:
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Space exited with code {proc.returncode} before answering:\n{_tail(log_file)}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        tick.wait(0.1)
    raise RuntimeError(f"the Space did not answer at {url} within {timeout:.0f} s:\n{_tail(log_file)}")


def _tail(log_file, n: int = 4000) -> str:
    log_file.flush()
    log_file.seek(0)
    return log_file.read().decode(errors="replace")[-n:]
