"""Variants that fit the content: what a PNG photo's variants and image page cost a client.

Method
------
* Starts ``chitram serve`` as installed (the ``chitram`` command next to this interpreter, the
  access line on, the web UI on) on the embedded default in a fresh data directory.
* Uploads a photo saved as PNG: 1600x1200, about 2.3 MB (``photo_png`` of the test kit: colour
  gradients, soft blotches and grain, seeded, so every run has the same bytes).
* Variant bytes: ``GET /variants/w640`` with the ``Accept`` of a browser that takes WebP
  (``image/webp,*/*``), one that also takes AVIF, and one that names neither (``*/*``). The
  baseline, in the same run: ``GET /variants/w640-png``, the same size in the source's format,
  which is what every variant of a PNG was before variants chose their format by content.
  Goal: the WebP one at most 80 KB.
* Phone page (when Chromium is installed): headless Chromium at 390x844 CSS pixels, 3 device
  pixels each, loads ``/images/{id}`` and the bytes of every response (headers and body) are
  summed once the network is idle. The variants are rendered before, so the figure is what a
  visitor receives, not a render. Baseline, in the same run and context: the same page's HTML
  plus the original (``/file``), which is what the page loaded before it used a sized variant.
  Goal: at most 200 KB.

Run:  python benchmarks/formats.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, stop, wait_for
from suite import chitram_env, start

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "web")]
from imagekit import photo_png  # noqa: E402
from phonekit import count_received, phone_context  # noqa: E402

PASSWORD = "formats-bench-password-1"
ACCEPTS = {
    "webp": "image/webp,*/*",
    "avif+webp": "image/avif,image/webp,*/*",
    "neither": "*/*",
}
SPECS = ("w320", "w640", "w1280", "w1920")


def chitram_command() -> list[str]:
    installed = Path(sys.executable).with_name("chitram")
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-m", "chitram_falcon"]


def variant_bytes(client: httpx.Client, image_id: str) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for name, accept in ACCEPTS.items():
        resp = client.get(f"/api/v1/images/{image_id}/variants/w640", headers={"Accept": accept})
        resp.raise_for_status()
        sizes[name] = {"bytes": len(resp.content), "type": resp.headers["content-type"]}
    base = client.get(f"/api/v1/images/{image_id}/variants/w640-png")
    base.raise_for_status()
    sizes["baseline_w640_png"] = len(base.content)
    for name in ACCEPTS:
        sizes[name]["of_baseline"] = round(sizes[name]["bytes"] / len(base.content), 3)
    return sizes


def chromium() -> str | None:
    for candidate in (os.environ.get("CHITRAM_CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def phone_page(base: str, image_id: str) -> dict[str, Any]:
    path = chromium()
    if path is None:
        return {"skipped": "Chromium is not installed (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = phone_context(browser, base)
            page = context.new_page()
            received = count_received(page)
            page.goto(f"/images/{image_id}", wait_until="networkidle")
            page.wait_for_function("document.querySelector('.viewer img')?.complete === true")
            page.wait_for_load_state("networkidle")
            shown = page.evaluate("document.querySelector('.viewer img').currentSrc")
            page_bytes = sum(received.values())
            html = received.get(f"{base}/images/{image_id}", 0)
            received.clear()
            page.goto(f"/api/v1/images/{image_id}/file", wait_until="networkidle")
            original = sum(received.values())
            context.close()
        finally:
            browser.close()
    baseline = html + original
    return {
        "image_shown": shown.removeprefix(base),
        "page_bytes": page_bytes,
        "baseline_html_plus_original_bytes": baseline,
        "of_baseline": round(page_bytes / baseline, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    data = photo_png()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        port = free_port()
        env = chitram_env(tmp / "data")
        env["CHITRAM_WEB_UI"] = "true"  # the suite's servers run without it
        # The baseline's spec served unsigned beside the default presets.
        env["CHITRAM_VARIANT_PRESETS"] = "w320,w640,w1280,w1920,w640-png"
        command = [*chitram_command(), "serve", "--workers", "1", "--port", str(port)]
        server = start(command, tmp, env, tmp / "server.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{base}/health", server)
            with httpx.Client(base_url=base, timeout=120) as client:
                resp = client.post(
                    "/api/v1/auth/register",
                    json={"email": "formats@example.com", "password": PASSWORD},
                )
                resp.raise_for_status()
                auth = {"Authorization": f"Bearer {resp.json()['access_token']}"}
                resp = client.post(
                    "/api/v1/images/upload",
                    files={"file": ("photo.png", data, "image/png")},
                    headers=auth,
                )
                resp.raise_for_status()
                image_id = resp.json()["id"]
                for spec in SPECS:  # rendered before the page is measured
                    for accept in ACCEPTS.values():
                        client.get(
                            f"/api/v1/images/{image_id}/variants/{spec}",
                            headers={"Accept": accept},
                        ).raise_for_status()
                report: dict[str, Any] = {
                    "command": " ".join(command[:2]),
                    "original_png_bytes": len(data),
                    "w640": variant_bytes(client, image_id),
                }
            report["phone_page"] = phone_page(base, image_id)
        finally:
            stop(server)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
