"""Build .dvc/plots_offline.html: a `dvc plots show` page template with vega inlined.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so offline its plots are blank.
This fetches the same versions from the npm registry (`npm pack`), inlines their minified builds
into a template and points DVC at it (`plots.html_template` in .dvc/config, committed). Run once;
the template is committed, so users need neither npm nor internet.

    python tools/offline_plots.py            # writes .dvc/plots_offline.html, sets the DVC config
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / ".dvc" / "plots_offline.html"
# The versions dvc_render's default page asks the CDN for (dvc_render/vega.py), and their builds.
PACKAGES = {"vega@5.20.2": "build/vega.min.js", "vega-lite@5.2.0": "build/vega-lite.min.js",
            "vega-embed@6.18.2": "build/vega-embed.min.js"}
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>ks-lottery plots</title>
    <!-- vega 5.20.2, vega-lite 5.2.0, vega-embed 6.18.2 (BSD-3-Clause, (c) University of Washington
         Interactive Data Lab), inlined by tools/offline_plots.py so that the page works offline. -->
%s
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def fetch(spec: str, member: str, workdir: Path) -> str:
    """The text of `member` of npm package `spec`, via `npm pack` (the npm registry only)."""
    result = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(workdir)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"npm pack {spec} failed: {result.stderr.strip()}")
    tarball = workdir / result.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        text = archive.extractfile(f"package/{member}").read().decode("utf-8")
    if "</script" in text or any(f"{{{p}}}" in text for p in ("plot_divs", "scripts", "refresh_tag")):
        sys.exit(f"{spec} {member} holds text that cannot be inlined into the template")
    return text


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        scripts = [f"    <script>{fetch(spec, member, Path(workdir))}</script>" for spec, member in PACKAGES.items()]
    tmp = TEMPLATE.with_suffix(".tmp")
    tmp.write_text(PAGE % "\n".join(scripts), encoding="utf-8")
    tmp.replace(TEMPLATE)
    subprocess.run([sys.executable, "-m", "dvc", "config", "plots.html_template", TEMPLATE.name], cwd=REPO, check=True)
    print(f"wrote {TEMPLATE.relative_to(REPO)} ({TEMPLATE.stat().st_size / 1e6:.1f} MB); "
          "`dvc plots show` now renders offline")


if __name__ == "__main__":
    main()
