"""Screenshot of the chat demo in a real conversation: the local OpenAI-compatible test server
answers, ``llmrouter chat`` serves the page, and headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) types the messages and saves the picture.

It trains a kNN router on the first ``--train-queries`` RouterDC training queries into a
temporary folder (unless ``--router-dir`` names a saved one), so it needs nothing but
``../shared`` and the packages of ``make screenshot``.

Usage: python scripts/demo_screenshot.py [--out docs/images/chat_demo.png]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "llmrouter_example"
QUESTIONS = [
    "Write a Python function that checks whether a number is prime.",
    "What is the capital of Australia?",
    "Now make the prime function faster for large numbers.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def _train_router(folder: Path, n_queries: int) -> Path:
    from langchain_llmrouter import CandidatePool, RoutingDataset, create_router

    pool = CandidatePool.from_json(DATA / "default_llm.json")
    data = RoutingDataset.from_file(DATA / "routerdc_train.json", candidates=pool).head(n_queries)
    target = folder / "models" / "knnrouter"
    create_router("knnrouter", k=20, weights="distance", metric="cosine").fit(data).save(target)
    return target


def _browser(width: int, height: int):  # type: ignore[no-untyped-def]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        sys.exit("needs selenium: pip install 'langchain-llmrouter[screenshot]' (make screenshot)")
    if not Path("/usr/bin/chromium").exists():
        sys.exit(
            "needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _converse(url: str, out: Path, width: int, height: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser(width, height)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 120)
        box = '[data-testid="stChatInputTextArea"]'
        for turn, question in enumerate(QUESTIONS, start=1):
            area = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, box)))
            area.send_keys(question)
            area.send_keys(Keys.ENTER)
            # Wait until this turn's routing caption is on the page and the run has finished.
            wait.until(lambda d, n=turn: d.page_source.count("Routed to") >= n)
            wait.until(
                lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
            )
        time.sleep(1.0)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "chat_demo.png")
    parser.add_argument("--router-dir", type=Path, help="a saved knnrouter (default: train one)")
    parser.add_argument("--train-queries", type=int, default=1500)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--cost-weight", type=float, default=2.0)
    args = parser.parse_args()

    from langchain_llmrouter.testing import FakeOpenAIServer

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer() as server:
        folder = Path(tmp)
        router_dir = args.router_dir or _train_router(folder, args.train_queries)
        config = {
            "router": "knnrouter",
            "data_path": {"llm_data": str(DATA / "default_llm.json")},
            "model_path": {"load_model_path": str(router_dir)},
            "api_endpoint": server.base_url,
            "max_tokens": 200,
        }
        config_path = folder / "chat.yaml"
        config_path.write_text(yaml.safe_dump(config))
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "API_KEYS"}
        app = subprocess.Popen(
            [sys.executable, "-m", "langchain_llmrouter.chat", "--router", "knnrouter",
             "--config", str(config_path), "--port", str(port), "--mode", "retrieval",
             "--cost-weight", str(args.cost_weight)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_http(f"http://127.0.0.1:{port}/_stcore/health")
            _converse(f"http://127.0.0.1:{port}", args.out, args.width, args.height)
        finally:
            app.terminate()
            app.wait(20)
    print(f"saved {args.out} ({len(server.calls)} calls answered by the local server)")


if __name__ == "__main__":
    main()
