"""Headless Chromium for tests: Debian's `chromium`, installed with apt-get when missing, run with a fresh profile.

When it is missing and cannot be installed (not root, no apt-get, no network to the mirror), the test
is skipped with the reason, never silently passed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_TIMEOUT = 900


def chromium() -> Path:
    """The path of Chromium, installing Debian's package first when it is missing."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing and apt-get cannot install it here (needs root): apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    if result.returncode != 0:  # stale package lists are the usual reason: refresh once and retry
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=INSTALL_TIMEOUT, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    if not CHROMIUM.exists():
        pytest.skip(f"could not install chromium with apt-get: {result.stderr.strip()[-300:]}")
    return CHROMIUM


def _target(url_or_file: str | Path) -> str:
    return url_or_file.resolve().as_uri() if isinstance(url_or_file, Path) else url_or_file


def _run(arguments: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="journey-chromium-") as profile:
        command = [str(chromium()), *FLAGS, f"--user-data-dir={profile}", *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited with {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def screenshot(
    url_or_file: str | Path, png_path: Path, size: tuple[int, int] = (1280, 900), timeout: float = 60
) -> Path:
    """A PNG of the page as Chromium renders it, scripts run."""
    png_path.unlink(missing_ok=True)
    _run(
        [f"--screenshot={png_path}", f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", _target(url_or_file)],
        timeout,
    )
    if not png_path.exists():
        raise RuntimeError(f"chromium wrote no screenshot at {png_path}")
    return png_path


def dump_dom(url_or_file: str | Path, timeout: float = 60) -> str:
    """The page's DOM after its scripts ran (charts drawn), as HTML text."""
    return _run(["--dump-dom", "--virtual-time-budget=5000", _target(url_or_file)], timeout).stdout
