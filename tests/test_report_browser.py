"""The report in a real browser (headless Chromium): main elements render, screenshot saved.

The screenshot goes to tests/artifacts/report.png for a person to look at.
Skipped when Chromium is not installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_report import PAYLOADS, make_bundle, make_manifest, make_rows

from tracec.report import render_report

pytestmark = pytest.mark.browser

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND"]


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("headless Chromium is not installed (/usr/bin/chromium missing); install it with "
                "`apt-get update && apt-get install -y chromium` to run the browser tests")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.tags, self.svg_ids, self.text = set(), set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
            if tag == "svg":
                self.svg_ids.add(attrs["id"])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser") / "bundle"
    previous = make_manifest(make_rows(seed=1), "open").model_dump(mode="json")
    make_bundle(root, previous=previous)
    return render_report(root, root.parent / "report.html", allow_unsigned=True)


def test_dom_has_every_section_and_chart(report, tmp_path):
    chromium = _chromium()
    result = _run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                   report.as_uri()])
    assert result.returncode == 0, result.stderr[-2000:]
    dom = _Dom()
    dom.feed(result.stdout)
    assert {"verdict-banner", "measured", "cost-table", "blocking-table", "disagreement-cards",
            "slices-length", "slices-label", "boundary-table", "representatives-table",
            "deltas-overall", "deltas-labels", "files-table"} <= dom.ids
    for section in ("verdict", "cost", "frontier", "labels", "blocking", "disagreements", "slices",
                    "boundary", "representatives", "deltas", "details"):
        assert section in dom.ids, section
    assert {"frontier-chart", "label-chart"} <= dom.svg_ids
    assert "script" not in dom.tags and "img" not in dom.tags
    text = "".join(dom.text)
    assert "GATE OPEN" in text
    for payload in PAYLOADS:  # the browser shows the payloads as text
        assert payload in text, payload


def test_screenshot_is_saved_and_not_blank(report, tmp_path):
    chromium = _chromium()
    image = pytest.importorskip("PIL.Image")
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    target = ARTIFACTS_DIR / "report.png"
    target.unlink(missing_ok=True)
    result = _run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                   f"--screenshot={target}", "--window-size=1280,2400", report.as_uri()])
    assert result.returncode == 0, result.stderr[-2000:]
    with image.open(target) as im:
        assert im.size == (1280, 2400)
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # text, banner and charts were drawn
    assert any(rgb == (0xDA, 0xFB, 0xE1) for _, rgb in colors)  # the green open-gate banner
