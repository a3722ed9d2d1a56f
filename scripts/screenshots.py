"""The README's screenshots: the run page after a real run and the review page on its labels, taken from a fresh
embedded server (its own SQLite file, the demo user and dataset, the packaged model) with Chromium.

Usage: .venv/bin/python scripts/screenshots.py [--out docs/img] [--limit 16]

Takes a few minutes on 2 CPU cores (one ICM run and its baselines on the first `--limit` claims).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for the runs")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="icm-screenshots-"))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", "HTTPS": "0", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    _manage(env, "migrate", "--noinput")
    login = _manage(env, "bootstrap_demo")
    password = re.search(r"password '([^']+)'", login).group(1)
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("daphne")), "-b", "127.0.0.1", "-p", str(port),
                               "webapp.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for _ in range(100):
                try:
                    page.goto(f"{base}/accounts/login/")
                    break
                except Exception:  # the server is still starting
                    time.sleep(0.3)
            page.fill("#id_username", "demo")
            page.fill("#id_password", password)
            page.click("button[type=submit]")
            page.wait_for_url("**/datasets/")
            hrefs = page.eval_on_selector_all("main a[href^='/datasets/']", "links => links.map(a => a.href)")
            dataset = next(m.group(1) for h in hrefs if (m := re.search(r"/datasets/(\d+)/", h)))
            page.goto(f"{base}/datasets/{dataset}/runs/new/")
            page.fill("#id_limit", str(args.limit))
            page.fill("#id_seeds", "0")
            with page.expect_navigation():
                page.click("main form button[type=submit]")
            run_url = page.url
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                page.goto(f"{base}/datasets/{dataset}/runs/")
                if not re.search(r"\b(queued|running)\b", page.inner_text("main")):
                    break
                time.sleep(5)
            page.goto(run_url)
            page.screenshot(path=str(args.out / "run.png"), full_page=True)
            page.goto(f"{base}/datasets/{dataset}/review/")
            icm = page.locator("select[name=model] option", has_text="(icm)").first.get_attribute("value")
            page.select_option("select[name=model]", icm)
            page.click("form.row button[type=submit]")
            page.wait_for_load_state()
            first_cell = page.locator("main table a").first
            if first_cell.count():
                first_cell.click()
                page.wait_for_load_state()
            page.screenshot(path=str(args.out / "review.png"), full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {args.out / 'run.png'} and {args.out / 'review.png'}")


if __name__ == "__main__":
    main()
