"""The quick start of docs/security.md, run as written: its shell commands (with the data
directory and port of the test), its two Autobahn|Python scripts, and the output it shows.
If the page and the router drift apart, this fails."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time

from junction_harness import REPO_ROOT, STARTUP_TIMEOUT, free_port, junction_binary

DOC = REPO_ROOT / "docs" / "security.md"
DOC_PORT = "127.0.0.1:8080"
DOC_DATA_DIR = "./junction-data"


def quick_start() -> tuple[list[str], list[str]]:
    """The section's ``sh`` blocks and its output blocks, in order."""
    section = DOC.read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", section, re.S | re.M)
    commands = [body for lang, body in blocks if lang == "sh"]
    outputs = [body for lang, body in blocks if lang == ""]
    return commands, outputs


def run_line(line: str, data_dir, cwd) -> subprocess.CompletedProcess:
    argv = [str(junction_binary()) if word == "junction" else word for word in shlex.split(line)]
    argv = [str(data_dir) if word == DOC_DATA_DIR else word for word in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=STARTUP_TIMEOUT, cwd=cwd)


def wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the router of the quick start did not start (exit {process.poll()})")


def test_the_security_quick_start_works_as_written(tmp_path):
    commands, outputs = quick_start()
    operator, serve, pip, setup, client = commands
    data_dir = tmp_path / "junction-data"
    for line in operator.strip().splitlines():
        done = run_line(line, data_dir, tmp_path)
        assert done.returncode == 0, (line, done.stderr)
    assert pip.strip() == "python -m pip install autobahn"

    port = free_port()
    argv = shlex.split(serve.strip().replace(DOC_PORT, f"127.0.0.1:{port}"))
    assert argv[:2] == ["junction", "serve"], argv
    argv = [str(junction_binary()), *[str(data_dir) if a == DOC_DATA_DIR else a for a in argv[1:]]]
    log = open(tmp_path / "router.log", "wb")
    router = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_listening(port, router)
        expected = iter(outputs)
        for block in (setup, client):
            name, script, runner = re.fullmatch(
                r"cat > (\S+) <<'EOF'\n(.*)\nEOF\npython (\S+)\n", block, re.S).groups()
            assert runner == name, block
            (tmp_path / name).write_text(script.replace(DOC_PORT, f"127.0.0.1:{port}"))
            ran = subprocess.run([sys.executable, name], capture_output=True, text=True,
                                 timeout=STARTUP_TIMEOUT * 2, cwd=tmp_path)
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout == next(expected), (name, ran.stdout, ran.stderr)
        # "Run it a second time and the router answers …"
        again = subprocess.run([sys.executable, "setup.py"], capture_output=True, text=True,
                               timeout=STARTUP_TIMEOUT * 2, cwd=tmp_path)
        assert again.stdout == (
            'bondy.error.already_exists: realm "com.example.app" already exists\n'), again
    finally:
        router.terminate()
        router.wait(STARTUP_TIMEOUT)
        log.close()
