"""procs.exit_on_sigterm: SIGTERM ends a benchmark through its `finally` blocks, and a fork
that inherited the handler (pyroute2's NetNS helper) just dies. procs.output: a tool's output,
or the lab's error with what failed and the tool's own reason."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lbctl.lab import procs

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from lbctl.lab import procs
    procs.exit_on_sigterm()
    try:
        child = os.fork()
        if child == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            print("the fork went on", flush=True)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        print(f"fork exit {os.waitstatus_to_exitcode(status)}", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        print(f"finally in {'parent' if os.getpid() == PARENT else 'fork'}", flush=True)
    """
)


def test_sigterm_runs_the_owners_finally_and_a_fork_that_inherited_the_handler_just_dies() -> None:
    code = "import os\nPARENT = os.getpid()\n" + SCRIPT
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert got.stdout.splitlines() == ["fork exit 143", "finally in parent"], got.stderr
    assert got.returncode == 143


class ToolFailed(RuntimeError):
    pass


def test_output_is_the_tools_standard_output() -> None:
    assert procs.output(["sh", "-c", "echo made"], error=ToolFailed, what="make") == "made\n"


def test_a_failing_tool_raises_the_callers_error_with_what_failed_and_the_tools_reason() -> None:
    with pytest.raises(ToolFailed, match=r"^openssl \(ca key\) failed: no such file$"):
        procs.output(
            ["sh", "-c", "echo ' no such file ' >&2; exit 1"],
            error=ToolFailed,
            what="openssl (ca key) failed",
        )
