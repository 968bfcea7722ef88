"""Every ``.. code-block:: python`` of README.rst runs as pasted (issue 8).

Each block runs on its own, in a fresh interpreter (a block cannot lean on another's names or
settings), with the local server's export block in the environment (``KEEN_BASE_URL``,
``KEEN_PROJECT_ID`` and the three keys) pointing at a server this test starts on 127.0.0.1.
The blocks are found when the tests are collected, so a section added to the README is
checked from then on. A failure names the block's line in README.rst.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keen.server import LocalKeenServer

README = Path(__file__).resolve().parent.parent / "README.rst"
DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*python3?\s*$")
#: A block gets this long to run (they take well under a second each).
TIMEOUT = 60


@dataclass(frozen=True)
class Block:
    line: int  # of the ``.. code-block:: python`` directive, 1-based
    code: str


def python_blocks(text: str) -> list[Block]:
    """The ``.. code-block:: python`` blocks of an reStructuredText document, dedented."""
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        match = DIRECTIVE.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        body: list[str] = []
        cursor = index + 1
        while cursor < len(lines) and lines[cursor].strip().startswith(":"):
            cursor += 1  # directive options such as :caption:
        for following in lines[cursor:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break  # back at the directive's own indentation: the block is over
            body.append(following)
        blocks.append(Block(index + 1, textwrap.dedent("\n".join(body)).strip("\n") + "\n"))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_parser_finds_blocks_and_their_lines() -> None:
    sample = ("Title\n=====\n\n.. code-block:: python\n\n    import keen\n\n"
              "    keen.flush()\n\nText.\n\n  .. code-block:: python\n\n      x = 1\n"
              "\n.. code-block:: text\n\n    not python\n")
    assert python_blocks(sample) == [Block(4, "import keen\n\nkeen.flush()\n"),
                                     Block(12, "x = 1\n")]
    assert len(BLOCKS) >= 10


@pytest.fixture(scope="module")
def environment() -> Iterator[dict[str, str]]:
    """The process environment with the export block of a fresh local server, and no other
    KEEN_* variable."""
    with LocalKeenServer() as server:
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("KEEN_")}
        env.update(server.environment())
        yield env


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.rst-line-{b.line}" for b in BLOCKS])
def test_readme_block_runs_as_pasted(block: Block, environment: dict[str, str],
                                     tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", block.code], env=environment, cwd=tmp_path,
                            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, (
        f"README.rst line {block.line}: the python block there fails when run as pasted "
        f"(exit {result.returncode}):\n{result.stderr[-3000:]}")


#: A command that installs keen from PyPI, where "keen" is still 0.7.0 (no server, no tour).
PYPI_INSTALL = re.compile(r"pip install\s+(?:-\S+\s+)*[\"']?keen(?:==[\w.]+)?[\"']?(?:\s|$|&)")


def test_install_commands_install_this_version() -> None:
    assert PYPI_INSTALL.search("    python -m pip install keen\n")  # what the README said
    assert PYPI_INSTALL.search("pip install keen && python -m keen")
    assert not PYPI_INSTALL.search("python -m pip install /path/to/keen")
    commands = [line for line in README.read_text(encoding="utf-8").splitlines()
                if line.startswith("    ") and "pip install" in line]
    assert commands, "the README shows how to install"
    assert [line for line in commands if PYPI_INSTALL.search(line)] == []


@pytest.mark.parametrize("name", ["README.rst", "CHANGELOG.rst"])
def test_the_document_renders_without_warnings(name: str) -> None:
    """A malformed table or a broken directive renders as an error box on the package page."""
    import io

    import docutils.core

    warnings = io.StringIO()
    text = (README.parent / name).read_text(encoding="utf-8")
    docutils.core.publish_doctree(text, settings_overrides={
        "warning_stream": warnings, "report_level": 2, "halt_level": 5})
    assert warnings.getvalue() == ""
