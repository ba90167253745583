"""Child processes that the lab and the tests start, stopped by PID and never leaked (I/O)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lbctl.lab import waits


class ProcessError(RuntimeError):
    """A child process failed to start or died early; the message carries its log's tail."""


def exit_on_sigterm(*, interrupt: bool = False) -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread, so ``finally`` blocks stop the
    children a long run (a benchmark) started, instead of the process dying around them.
    ``interrupt``: raise KeyboardInterrupt instead, on which pytest ends the session and still
    tears its fixtures down (it dies at once on a plain SIGTERM)."""

    owner = os.getpid()

    def leave(signum: int, _: object) -> None:
        if os.getpid() != owner:
            # A fork that inherited the handler (pyroute2's NetNS forks a helper into each
            # namespace and ends it with SIGTERM): dying is its job. Raising here would run the
            # parent's `finally` blocks in the fork, which took a whole lab down mid-build.
            os._exit(128 + signum)
        if interrupt:
            raise KeyboardInterrupt(f"signal {signum}")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now; the caller binds it soon after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def running(pid: int) -> bool:
    """Whether ``pid`` is a running process; a zombie (exited, not yet reaped) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, proc(5) ``stat`` field 22), or
    None if no such process runs. With the PID it names one process for good: PIDs recycle."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # field 3 on: the name may hold spaces
    return None if fields[0] == "Z" else int(fields[19])


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` inside network namespace ``netns`` (or as is)."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


class Process:
    """One child in its own session, so stopping it also stops anything it forked."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        netns: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = netns_argv(netns, argv)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessError(f"{self.name}: cannot start {self.argv[0]}: {exc}") from exc
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            code = self.popen.returncode if self.popen else None
            raise ProcessError(f"{self.name} exited (code {code}); log {self.log}:\n{self.tail()}")

    def signal(self, sig: int) -> None:
        if self.alive() and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps the child."""
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # The group may hold children that outlived the leader.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def kill(self) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


def wait_until(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    watch: Sequence[Process] = (),
) -> None:
    """Poll ``ready()`` until true; fail early if a watched process dies."""

    def probe() -> bool:
        for proc in watch:
            proc.check_alive()
        return ready()

    try:
        waits.until(probe, timeout=timeout, interval=interval)
    except waits.TimedOut:
        tails = "".join(f"\n--- {p.name} ({p.log}):\n{p.tail()}" for p in watch)
        raise ProcessError(f"timed out after {timeout:.0f} s waiting for {what}{tails}") from None


def output(
    argv: Sequence[str], *, error: type[Exception], what: str, cwd: Path | None = None
) -> str:
    """Run ``argv`` to its end (no input) and return its standard output. If it exits non-zero,
    raise ``error("<what>: <its standard error>")``: the lab's tools say why on stderr."""
    got = subprocess.run(
        list(argv), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, cwd=cwd
    )
    if got.returncode != 0:
        raise error(f"{what}: {got.stderr.strip()}")
    return got.stdout
