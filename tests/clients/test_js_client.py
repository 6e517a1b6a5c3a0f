"""The official JavaScript client (`@langchain/langgraph-sdk`) against the test server.

Runs `tests/clients/js/client-flow.mjs` under Node 20+: create thread, stream to an interrupt,
resume, history. Dependencies come from `tests/clients/js/package-lock.json` (`npm ci`, once).
Skipped when Node or npm is missing; a failing install or script fails the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from tests.support.servers import ROOT

pytestmark = pytest.mark.slow  # installs the JS client with npm and runs Node

JS = ROOT / "tests" / "clients" / "js"


def _node_major(node: str) -> int:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().lstrip("v").split(".")[0])


@pytest.fixture(scope="module")
def node() -> str:
    """Node with the client installed in `tests/clients/js/node_modules`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    # Node is part of the test environment (the machine has it; the test must not pass
    # silently where it is missing).
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the JS client test")
    if _node_major(node) < 20:
        pytest.fail("the JS client test needs Node 20 or newer")
    if not (JS / "node_modules" / "@langchain" / "langgraph-sdk").is_dir():
        install = ["ci"] if (JS / "package-lock.json").exists() else ["install"]
        done = subprocess.run(
            [npm, *install, "--no-audit", "--no-fund"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"npm {install[0]} failed:\n{done.stdout}\n{done.stderr}"
    return node


async def test_js_client_flow(node: str, server_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        node,
        "client-flow.mjs",
        cwd=JS,
        env={**os.environ, "TRELLIS_URL": server_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"{stdout.decode()}\n{stderr.decode()}"
    assert stdout.decode().startswith("ok: thread "), stdout.decode()
