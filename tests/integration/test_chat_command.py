"""``llmrouter chat`` serves the Streamlit page, and ``examples/streamlit_app.py`` is the same
page; a bad config fails on the command line before any server starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from langchain_llmrouter import BaseRouter
from langchain_llmrouter.cli.main import main as llmrouter
from langchain_llmrouter.testing import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def chat_config(
    tmp_path: Path, shared_data: Path, knn_router: BaseRouter, openai_server: FakeOpenAIServer
) -> Path:
    knn_router.save(tmp_path / "models" / "knnrouter")
    config = {
        "router": "knnrouter",
        "data_path": {"llm_data": str(shared_data / "default_llm.json")},
        "model_path": {"load_model_path": str(tmp_path / "models" / "knnrouter")},
        "api_endpoint": openai_server.base_url,
    }
    path = tmp_path / "chat.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_llmrouter_chat_serves_the_page(chat_config: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_llmrouter.chat", "--router", "knnrouter", "--config", str(chat_config), "--port", str(port), "--mode", "retrieval"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                health = urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_stcore/health", timeout=2
                ).read()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the page did not start within 90 s"
                time.sleep(0.3)
        assert health == b"ok"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "<title>Streamlit</title>" in page and '<div id="root"></div>' in page
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    assert f"Serving the chat demo at http://127.0.0.1:{port}" in output


def test_a_bad_config_fails_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("router: knnrouter\ndata_path:\n  llm_dta: x.json\n")
    assert llmrouter(["chat", "--router", "knnrouter", "--config", str(bad), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: ")
        and "bad.yaml, line 3, field 'data_path.llm_dta': unknown key" in err
    )


def test_the_example_file_is_the_same_page(
    chat_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMROUTER_CHAT_CONFIG", str(chat_config))
    at = AppTest.from_file(str(REPO / "examples" / "streamlit_app.py"), default_timeout=120)
    at.run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Routed chat"
    assert at.selectbox(key="router").value == "knnrouter"
