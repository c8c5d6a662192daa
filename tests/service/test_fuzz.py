"""An OpenAPI fuzz run: schemathesis, driven by the running server's own /openapi.json with a valid
token, finds no 5xx answer on any route: the coverage phase's cases for every operation, then
``MAX_EXAMPLES`` fuzzed cases per operation. Bounded by the count, not the clock: with ``--max-time``
schemathesis keeps fuzzing until the time is spent (a minute per database); the subprocess
timeout is the guard."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

MAX_EXAMPLES = 15
TIMEOUT_S = 300


def _schemathesis() -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    return [str(exe)] if exe.exists() else [shutil.which("schemathesis") or "schemathesis"]


def test_openapi_fuzz_finds_no_server_error(server, tmp_path):
    token = server.token("fuzzer")
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
    assert "/api/v1/jobs" in spec["paths"] and "/metrics" in spec["paths"]
    cmd = _schemathesis() + [
        "run", server.url + "/openapi.json", "--checks", "not_a_server_error",
        "--max-examples", str(MAX_EXAMPLES), "--seed", "12",
        "--header", f"Authorization: Bearer {token}", "--request-timeout", "30", "--workers", "2",
        "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all", "--no-color",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:] + "\n--- server log ---\n" + server.log()[-3000:]
    assert "500 Internal Server Error" not in out
    tested = re.search(r"Tested:\s*(\d+)", out)  # every operation of the schema was fuzzed, none left out
    assert tested and int(tested.group(1)) == len([m for ops in spec["paths"].values() for m in ops
                                                   if m in ("get", "post", "put", "patch", "delete")]), out[-3000:]
