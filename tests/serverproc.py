"""Run a server (``python -m wsserver``, an example script) as a child process.

The child prints the address it listens on; :func:`running` waits for that
line (bounded in time), yields the port, and on exit stops the child with
SIGINT, as Ctrl-C would, killing it only if it does not stop in time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
# "...://localhost:43123/", "...://127.0.0.1:43123", "port 43123"
PORT_PATTERN = re.compile(r"(?:(?:localhost|127\.0\.0\.1|\]):|port )(\d+)")


@dataclass
class ServerProcess:
    """A running child server."""

    process: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)  # every line it printed (stdout and stderr)

    def text(self) -> str:
        return "".join(self.output)

    def stop(self) -> int:
        """Ctrl-C (SIGINT), as a user would; kill only if it does not exit in time.
        The exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: this tree's ``src`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@contextmanager
def running(
    argv: list[str], env: Mapping[str, str] | None = None, startup_timeout: float = 30.0, cwd: Path = REPO
) -> Iterator[ServerProcess]:
    """Start ``python *argv``; yield once it printed its port; stop it with SIGINT."""
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=cwd,
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    port_found = threading.Event()
    ports: list[int] = []

    def read_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # ends when the child exits
            output.append(line)
            match = PORT_PATTERN.search(line)
            if match and not ports:
                ports.append(int(match.group(1)))
                port_found.set()
        port_found.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        if not port_found.wait(startup_timeout) or not ports:
            raise AssertionError(f"{argv} printed no port within {startup_timeout} s:\n{''.join(output)}")
        server = ServerProcess(process, ports[0], output)
        yield server
    finally:
        ServerProcess(process, 0, output).stop()
        reader.join(5)
