"""`journey dev` (what `make run` runs) end to end: a real dev server from the wheel, the worker, demo data,
published examples and simulated form fills; the Temporal UI answers; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from support import free_port

REPO = Path(__file__).resolve().parent.parent


def _run_curl(command: str) -> dict[str, Any]:
    """The printed `curl -s URL -H ... -d BODY` line, sent as it stands (urllib, so curl need not be installed)."""
    words = shlex.split(command)
    url, headers, body = words[2], {}, b""
    for flag, value in zip(words[3::2], words[4::2], strict=True):
        if flag == "-H":
            name, _, text = value.partition(": ")
            headers[name] = text
        else:
            body = value.encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def test_dev_stack(tmp_path: Path) -> None:
    """The stack comes up, publishes the runnable examples, moves accounts on, and shuts down cleanly."""
    port, ui_port, services_port, http_port = free_port(), free_port(), free_port(), free_port()
    shutil.copytree(REPO / "journeys", tmp_path / "journeys")
    services = tmp_path / "journeys" / "services.yaml"
    services.write_text(services.read_text().replace("127.0.0.1:8790", f"127.0.0.1:{services_port}"))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEMPORAL_", "JOURNEY_"))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "dev",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--services-port",
            str(services_port),
            "--http-port",
            str(http_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops"):
                break
        output = "\n".join(lines)
        assert f"Temporal UI:  http://localhost:{ui_port}/namespaces/default/workflows" in output, output
        assert "published webinar-follow-up: 32 started, 0 already running" in output
        assert "published re-engagement: 81 started, 0 already running" in output
        assert "published ai-seed-abm: 70 started, 0 already running" in output
        assert "published irrigation-buying-group: 51 started, 0 already running" in output
        assert output.count("form fill 'webinar-attended' for ") == 5
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=10) as page:
            assert page.status == 200
        assert f"Events:       http://127.0.0.1:{http_port}  (OpenAPI " in output
        curl = next(line for line in lines if line.startswith("Fill a form:  curl "))
        answer = _run_curl(curl.removeprefix("Fill a form:  "))
        assert answer["results"][0]["status"] == "accepted", answer
        # The handoff demo: three ai-seed accounts go all the way to the sales handoff, whatever the hour.
        demo = "acme-corp, apexfield-farms, apexview-biosciences"
        assert f"handoff demo: {demo} go through ai-seed-abm now (send window ignored)" in output
        deadline = time.monotonic() + 120  # the demo's own steps, after start-up
        while time.monotonic() < deadline and sum("handed to sales at" in line for line in lines) < 3:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        output = "\n".join(lines)
        for account_id in demo.split(", "):
            [handed] = re.findall(rf"handoff demo: {account_id} handed to sales at (\d+)% complete", output) or [output]
            assert int(handed) >= 75, output  # the gate's threshold in journeys/ai_seed_abm.yaml
        assert "joined (" in output  # at least one account needed a newcomer to cross the threshold
        handoffs = subprocess.run(
            [sys.executable, "-m", "engine.cli", "handoffs", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        handed = sorted(row["account"] for row in json.loads(handoffs.stdout) if row["journey"] == "ai-seed-abm")
        assert handed == demo.split(", ")
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "stopping..." in rest
    assert (tmp_path / ".journey" / "temporal.db").exists()
