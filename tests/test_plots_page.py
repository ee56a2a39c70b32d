"""`dvc plots show` makes a page that works offline: no script from the network, the chart library
inline, and (where Debian's chromium is installed) every chart really drawn in a headless browser.

Uses the repository's own committed plot data (results/table.csv, loss_curves.csv, dev_scores.csv, the
KS histogram, results/*.png).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plots")
    result = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", str(out)], cwd=REPO, env=ENV,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return out / "index.html"


def test_the_page_loads_nothing_from_the_network(page):
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", html), "a script is loaded from elsewhere"
    assert "https://cdn" not in html
    # a few comparison charts (the table, all loss curves, dev scores, the D histogram), then the PNGs
    assert "vega-embed" in html and html.count("vegaEmbed(") == 4
    images = re.findall(r'<img src="([^"$]+)"', html)
    assert len(images) == 4
    for image in images:
        assert (page.parent / image).is_file(), image


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_every_chart_is_drawn_in_a_headless_browser(page, tmp_path):
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
               f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    charts = page.read_text(encoding="utf-8").count("vegaEmbed(")
    assert dom.count('class="marks"') == charts  # vega drew a canvas for every chart
