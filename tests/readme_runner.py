"""Runs README.md's code blocks, top to bottom, as a reader would (used by tests/test_readme.py).

How the blocks run — the rules for whoever edits the README:

- Every fenced block runs, in order, unless a directive in an HTML comment on the line right
  above it says otherwise. A block in a language the runner cannot execute, without such a
  directive, fails the test.
- ```sh / ```bash / ```shell blocks run in ONE bash session (``set -eu``), as if typed into one
  terminal: a variable set in one block (``KEY=$(secevents keys create …)``) is there in the
  next, an unset one (``$ORG`` nobody set) fails the block. ``secevents`` is the installed
  command; ``curl`` and ``python3`` are the machine's (``python3`` is the virtualenv's).
- ```python blocks are saved as a file and run with ``python3 FILE`` from that session, so they
  see exactly its exported variables (``export SECEVENTS_API_KEY=$KEY``), nothing else.
- A live server runs throughout: ``secevents serve`` on a free port, over a fresh embedded
  PostgreSQL (or, when ``SECEVENTS_TEST_DATABASE_URL`` is set, a fresh empty database on that
  server, via ``DATABASE_URL``) — migrated and seeded on start, as after ``make serve``. The one
  thing the runner changes in a block is the address: ``localhost:8000`` and ``127.0.0.1:8000``
  become the free port's.
- The working folder is a scratch folder holding a link to the repository's ``data/``, so paths
  like ``data/ucdp/ged_pakistan.csv`` work and files the blocks write go away afterwards.
- Every HTTP response the server sends while a block runs must be below 400, so an id or key
  that is not real shows up as a 404 or 401. Directives (``<!-- readme: … -->``):
  - ``expect-status 400 412``: these statuses are what the block demonstrates;
  - ``stdout-contains TEXT``: the block's output must contain TEXT (e.g. that a search finds
    something on a fresh install);
  - ``not-run: test_name`` — the block cannot run here (``make serve`` itself); ``test_name`` is
    the test in tests/test_readme.py that checks it another way.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SHELL_LANGUAGES = {"sh", "bash", "shell"}
RUNNABLE_LANGUAGES = SHELL_LANGUAGES | {"python"}
_DIRECTIVE = re.compile(r"^<!--\s*readme:\s*(?P<body>.*?)\s*-->$")
_FENCE = re.compile(r"^```(?P<language>[\w+-]*)\s*$")
_ADDRESS = re.compile(r"\b(?:localhost|127\.0\.0\.1):8000\b")
BLOCK_TIMEOUT = 600.0


class ReadmeError(AssertionError):
    pass


@dataclass
class Block:
    number: int  # 1-based, in README order
    line: int  # the opening fence's line number
    language: str
    code: str
    expect_status: set[int] = field(default_factory=set)
    stdout_contains: list[str] = field(default_factory=list)
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"README.md block {self.number} (line {self.line}, ```{self.language})"


def parse(text: str) -> list[Block]:
    """The fenced blocks of ``text`` with the directives above each; raises on an unknown or
    misplaced directive and on an unclosed fence."""
    blocks: list[Block] = []
    lines = text.splitlines()
    pending: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        directive = _DIRECTIVE.match(line)
        fence = _FENCE.match(lines[index])
        if directive:
            pending.append((index + 1, directive["body"]))
        elif fence:
            start = index
            index += 1
            body: list[str] = []
            while index < len(lines) and lines[index].rstrip() != "```":
                body.append(lines[index])
                index += 1
            if index == len(lines):
                raise ReadmeError(f"README.md line {start + 1}: the code block is never closed")
            block = Block(len(blocks) + 1, start + 1, fence["language"] or "", "\n".join(body) + "\n")
            for at, body_text in pending:
                _apply(block, at, body_text)
            pending = []
            blocks.append(block)
        elif line and pending:
            raise ReadmeError(
                f"README.md line {pending[0][0]}: a directive must sit right above a code block"
            )
        index += 1
    if pending:
        raise ReadmeError(f"README.md line {pending[0][0]}: a directive with no code block after it")
    return blocks


def _apply(block: Block, line: int, body: str) -> None:
    name, _, argument = body.partition(" ")
    argument = argument.strip()
    if name == "expect-status":
        block.expect_status |= {int(s) for s in argument.split()}
    elif name == "stdout-contains" and argument:
        block.stdout_contains.append(argument)
    elif name == "not-run:" and re.fullmatch(r"test_\w+", argument):
        block.not_run = argument
    else:
        raise ReadmeError(f"README.md line {line}: unknown readme directive {body!r}")


def check_runnable(blocks: list[Block]) -> None:
    for block in blocks:
        if block.not_run is None and block.language not in RUNNABLE_LANGUAGES:
            raise ReadmeError(
                f"{block.where}: the runner cannot execute ```{block.language} blocks; use sh or "
                "python, or mark it `<!-- readme: not-run: test_… -->` with a test that checks it"
            )


def localise(code: str, base_url: str) -> str:
    """The block as it runs here: the README's address replaced by the test server's."""
    return _ADDRESS.sub(base_url.removeprefix("http://"), code)


@dataclass
class Outcome:
    block: Block
    output: str
    statuses: list[int]


class Session:
    """One bash process driven block by block; the server's access log read alongside."""

    MARK = "__readme_block_done__"

    def __init__(self, folder: Path, env: dict[str, str], base_url: str, server_log: Path) -> None:
        self.folder = folder
        self.env = env
        self.base_url = base_url
        self.server_log = server_log
        self._log_offset = 0
        self._bash: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Session:
        self._bash = await asyncio.create_subprocess_exec(
            "bash",
            "--noprofile",
            "--norc",
            cwd=self.folder,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await self._send("set -eu\n")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._bash is not None
        if self._bash.returncode is None:
            assert self._bash.stdin is not None
            self._bash.stdin.close()
            await self._bash.wait()

    async def _send(self, text: str) -> None:
        assert self._bash is not None and self._bash.stdin is not None
        self._bash.stdin.write(text.encode())
        await self._bash.stdin.drain()

    async def run(self, block: Block) -> Outcome:
        assert self._bash is not None and self._bash.stdout is not None
        code = localise(block.code, self.base_url)
        suffix = "py" if block.language == "python" else "sh"
        script = self.folder / f".readme-block-{block.number}.{suffix}"
        script.write_text(code)
        command = (
            f"python3 {shlex.quote(str(script))}"
            if block.language == "python"
            else f". {shlex.quote(str(script))}"
        )
        # stdin is /dev/null so that no command in the block can read the rest of the session.
        # The mark on a line of its own even when the block's output does not end with one.
        await self._send(f"{command} </dev/null\necho; echo {self.MARK}\n")
        output: list[str] = []

        async def read_until_mark() -> bool:
            assert self._bash is not None and self._bash.stdout is not None
            while True:
                raw = await self._bash.stdout.readline()
                if not raw:
                    return False
                line = raw.decode(errors="replace")
                if line.rstrip("\n") == self.MARK:
                    output[-1] = output[-1].removesuffix("\n")  # the newline `echo` added
                    return True
                output.append(line)

        finished = await asyncio.wait_for(read_until_mark(), BLOCK_TIMEOUT)
        text = "".join(output)
        if not finished:
            returncode = await self._bash.wait()
            raise ReadmeError(
                f"{block.where} failed (exit status {returncode}):\n{code}\n--- output:\n{text}"
            )
        statuses = await self._statuses_since_last_block(block.number)
        return Outcome(block, text, statuses)

    async def _statuses_since_last_block(self, number: int) -> list[int]:
        """Statuses of the requests logged since the previous block: a marker request is sent,
        and the log is read up to its line (the log is written in request order, one worker)."""
        marker = f"readme-block-{number}"
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            await client.get("/health/live", headers={"X-Request-ID": marker})
        statuses: list[int] = []
        while True:
            with self.server_log.open("rb") as log:
                log.seek(self._log_offset)
                chunk = log.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            for raw in complete.splitlines():
                self._log_offset += len(raw) + 1
                entry = _json_line(raw)
                if entry is None or entry.get("logger") != "secevents.access":
                    continue
                if entry.get("request_id") == marker:
                    return statuses
                statuses.append(int(entry["status"]))
            await asyncio.sleep(0.05)


def _json_line(raw: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def check(outcome: Outcome) -> None:
    block = outcome.block
    unexpected = [s for s in outcome.statuses if s >= 400 and s not in block.expect_status]
    if unexpected:
        raise ReadmeError(
            f"{block.where}: the server answered {unexpected} (statuses {outcome.statuses}); a placeholder "
            f"left in the block, or mark the status with <!-- readme: expect-status … -->:\n{block.code}"
            f"--- output:\n{outcome.output}"
        )
    for status in block.expect_status:
        if status not in outcome.statuses:
            raise ReadmeError(f"{block.where}: expected a {status} response, got {outcome.statuses}")
    for text in block.stdout_contains:
        if text not in outcome.output:
            raise ReadmeError(f"{block.where}: the output lacks {text!r}:\n{outcome.output}")
