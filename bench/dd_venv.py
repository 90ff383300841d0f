"""Build (once) and cache a virtualenv with Data Designer for the benchmark's peer runs.

Data Designer pins ``huggingface_hub<2`` and ``pyarrow<25``, so it cannot share the project's venv. The venv
lives in ``.bench-cache/dd-venv-<version>/`` (gitignored) and is reused while its marker file says the build
finished; ``python -m bench.dd_venv`` builds it ahead of time.

Data Designer's own pieces live in three distributions (``data-designer``, ``data-designer-config``,
``data-designer-engine``) that pin each other to the same version; ``datasets`` is not needed for its push.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"
DD_VERSION = os.environ.get("BENCH_DD_VERSION", "0.9.6")
_MARKER = "bench-ready.json"


def venv_dir(version: str = DD_VERSION) -> Path:
    return CACHE / f"dd-venv-{version}"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_dd_venv(version: str = DD_VERSION, *, log=print) -> Path:
    """The python executable of a venv with ``data-designer==version``, built on first use."""
    venv = venv_dir(version)
    marker = venv / _MARKER
    if marker.exists():
        return python_of(venv)
    log(f"building the Data Designer {version} venv in {venv} (first use; a few minutes) ...")
    started = time.perf_counter()
    if venv.exists():
        import shutil

        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = python_of(venv)
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", f"data-designer=={version}"],
        check=True,
    )
    probe = subprocess.run(
        [
            str(py),
            "-c",
            "import json, importlib.metadata as m; print(json.dumps({d: m.version(d) for d in "
            "['data-designer', 'data-designer-engine', 'data-designer-config', 'huggingface_hub', 'pyarrow', "
            "'pandas']}))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    versions = json.loads(probe.stdout)
    marker.write_text(json.dumps({"versions": versions, "build_seconds": time.perf_counter() - started}, indent=2))
    log(f"Data Designer venv ready in {time.perf_counter() - started:.0f} s: {versions}")
    return py


def dd_versions(version: str = DD_VERSION) -> dict[str, str]:
    marker = venv_dir(version) / _MARKER
    return json.loads(marker.read_text())["versions"] if marker.exists() else {}


if __name__ == "__main__":
    print(ensure_dd_venv())
