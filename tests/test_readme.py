"""Every command block of README.md runs as written, against a Trellis server this test starts.

The rules, so that no block is left out without saying so:

- A fenced block tagged `bash`, `sh` or `python` is a command block; every other fenced block
  must be tagged `text` (diagrams), so a command cannot hide in an untagged block.
- A command block runs, in README order, unless the line right before it is
  `<!-- readme-test: skip: REASON -->` (the reason is required; for `make serve`/`make test`,
  which .ci/run runs on a clean clone, and `langgraph dev`). A marker that precedes no command
  block is an error.
- Blocks run with this test's Trellis server up (`trellis serve` with the project's
  `langgraph.json`, on a scratch database and a scratch `EMBEDDED_DATA_DIR`), except those
  marked `<!-- readme-test: without-server -->`: the server is stopped first (embedded Qdrant
  has one owner; a block may start its own server), and whatever the block left running is
  ended after it.
- The README's address (`127.0.0.1:8123`, `localhost:8123`) is the test server's: port 8123 is
  rewritten to a free port, which `PORT` also names, so a block's own `trellis serve` uses it.
- Shell blocks run under `bash -euo pipefail`, Python blocks with this interpreter, in the
  checkout, with `uv` on the PATH. A block passes when it exits 0 and its output holds no
  Trellis error body (`{"detail": ..., "code": ...}`) and no SSE `error` event.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tests.support.servers import (
    NO_RATE_LIMIT_ENV,
    ROOT,
    create_database,
    drop_database,
    free_port,
    wait_ready,
)

README = ROOT / "README.md"
COMMAND_LANGUAGES = frozenset({"bash", "sh", "python"})
README_ADDRESSES = ("127.0.0.1:8123", "localhost:8123")
_MARKER = re.compile(r"^<!-- readme-test: (?P<kind>skip|without-server)(?:: (?P<reason>.*?))? -->$")
_FENCE = re.compile(r"^```(?P<language>\S*)\s*$")
_CLEARED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AUTH_MODE", "QDRANT_URL", "HOST", "PORT")
"""Settings of the developer's shell that would change what the README's commands do."""

BLOCK_SECONDS = 420
"""How long one block may run (the first question loads the embedding model)."""

Mode = Literal["with-server", "without-server", "skip"]


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int
    """1-based line of the opening fence."""
    language: str
    text: str
    mode: Mode
    reason: str | None = None

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.language}"


def parse(markdown: str) -> list[Block]:
    """The README's fenced blocks, each with how it is tested; raises on a misplaced marker."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    marker: tuple[int, re.Match[str]] | None = None
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped.startswith("<!-- readme-test"):
            found = _MARKER.match(stripped)
            if found is None:
                raise ValueError(f"README line {index + 1}: unknown marker {stripped!r}")
            if found["kind"] == "skip" and not (found["reason"] or "").strip():
                raise ValueError(f"README line {index + 1}: a skip marker must give its reason")
            marker = (index, found)
        fence = _FENCE.match(stripped)
        if fence is None:
            if marker is not None and stripped and not stripped.startswith("<!--"):
                raise ValueError(f"README line {marker[0] + 1}: the marker precedes no block")
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise ValueError(f"README line {start + 1}: unclosed block")
        index += 1
        language = fence["language"]
        mode: Mode = "with-server"
        reason = None
        if marker is not None:
            if marker[0] != start - 1:
                raise ValueError(f"README line {marker[0] + 1}: the marker must touch its block")
            mode = "skip" if marker[1]["kind"] == "skip" else "without-server"
            reason = marker[1]["reason"]
            marker = None
        blocks.append(Block(start + 1, language, "\n".join(body) + "\n", mode, reason))
    if marker is not None:
        raise ValueError(f"README line {marker[0] + 1}: the marker precedes no block")
    return blocks


BLOCKS = parse(README.read_text(encoding="utf-8"))
COMMANDS = [b for b in BLOCKS if b.language in COMMAND_LANGUAGES and b.mode != "skip"]


def test_every_block_is_run_or_exempt_with_a_reason() -> None:
    for block in BLOCKS:
        assert block.language in COMMAND_LANGUAGES | {"text"}, (
            f"README line {block.line}: tag the block bash, sh, python (a command) or text"
        )
        if block.language == "text":
            assert block.mode == "with-server", f"README line {block.line}: text is never run"
    exempt = {b.id: b.reason for b in BLOCKS if b.mode == "skip"}
    # The exemptions are few and deliberate: a new one is a decision, made here too.
    assert len(exempt) == 3, exempt
    skipped = "".join(b.text for b in BLOCKS if b.mode == "skip")
    assert "make serve" in skipped
    assert "langgraph dev" in skipped
    assert len(COMMANDS) >= 6


def test_parse_refuses_markers_that_exempt_nothing() -> None:
    assert [b.mode for b in parse("<!-- readme-test: skip: why -->\n```bash\nx\n```\n")] == ["skip"]
    for bad in (
        "<!-- readme-test: skip -->\n```bash\nx\n```\n",
        "<!-- readme-test: skip: why -->\ntext between\n```bash\nx\n```\n",
        "<!-- readme-test: skip: why -->\n",
        "<!-- readme-test: ignore: why -->\n```bash\nx\n```\n",
        "```bash\nnever closed\n",
    ):
        with pytest.raises(ValueError, match="README line"):
            parse(bad)


class ReadmeServer:
    """`trellis serve` as the README runs it, restartable between blocks."""

    def __init__(self, env: dict[str, str], url: str, log: Path) -> None:
        self.env = env
        self.url = url
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_ready(self.url, proc=self.proc)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def path_without_uv(path: str) -> str:
    """`path` less every directory holding a `uv`: the README's commands must find it
    themselves (through `scripts/uv`), as on a machine that never installed it."""
    return os.pathsep.join(
        entry for entry in path.split(os.pathsep) if entry and not (Path(entry) / "uv").exists()
    )


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeServer]:
    database = create_database()
    port = free_port()
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env = {
        **base,
        **NO_RATE_LIMIT_ENV,
        "DATABASE_URL": database,
        "EMBEDDED_DATA_DIR": str(tmp_path_factory.mktemp("readme-data")),
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "PATH": path_without_uv(base.get("PATH", "")),
    }
    server = ReadmeServer(env, f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("logs") / "s")
    try:
        yield server
    finally:
        server.stop()
        drop_database(database)


def errors_in(output: str) -> list[str]:
    """Trellis error bodies and SSE error events in a block's output."""
    found = [line for line in output.splitlines() if line.strip() == "event: error"]
    decoder = json.JSONDecoder()
    for match in re.finditer(r'\{"detail":', output):
        try:
            value, _ = decoder.raw_decode(output, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and set(value) == {"detail", "code"}:
            found.append(json.dumps(value))
    return found


def end_group(proc: subprocess.Popen[bytes]) -> None:
    """End a block's process group, and wait until it is gone (it may hold the port)."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        deadline = time.monotonic() + grace
        try:
            os.killpg(proc.pid, sig)
            while time.monotonic() < deadline:
                proc.poll()  # reap the block's shell, or the group never empties
                os.killpg(proc.pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            return
    raise AssertionError(f"the block's processes (group {proc.pid}) outlived SIGKILL")


def run_block(
    block: Block, server: ReadmeServer, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    port = server.url.rsplit(":", 1)[1]
    text = block.text
    for address in README_ADDRESSES:
        text = text.replace(address, f"127.0.0.1:{port}")
    assert "8123" not in text, f"README line {block.line}: an address the test cannot rewrite"
    if block.language == "python":
        script = tmp_path / "block.py"
        script.write_text(text, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", text]
    # Its own session, so whatever the block leaves running (a server in the background) is
    # ended after it; output goes to files, which such a process would otherwise hold open.
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=server.env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        proc.wait(timeout=BLOCK_SECONDS)
    finally:
        end_group(proc)
    return subprocess.CompletedProcess(
        command,
        proc.returncode,
        out.read_text(encoding="utf-8", errors="replace"),
        err.read_text(encoding="utf-8", errors="replace"),
    )


@pytest.mark.slow
@pytest.mark.timeout(BLOCK_SECONDS + 180)  # the block, and a server (re)start before it
@pytest.mark.parametrize("block", COMMANDS, ids=[b.id for b in COMMANDS])
def test_readme_block_runs_as_written(
    block: Block, readme_server: ReadmeServer, tmp_path: Path
) -> None:
    if block.mode == "without-server":
        readme_server.stop()
    else:
        readme_server.start()
    result = run_block(block, readme_server, tmp_path)
    report = (
        f"README line {block.line} ({block.language}) exited {result.returncode}\n"
        f"--- block\n{block.text}--- stdout\n{result.stdout[-4000:]}\n"
        f"--- stderr\n{result.stderr[-4000:]}"
    )
    if readme_server.log.exists():
        report += f"\n--- server log\n{readme_server.log.read_text(errors='replace')[-3000:]}"
    assert result.returncode == 0, report
    assert not errors_in(result.stdout), report
    assert result.stdout.strip(), report
