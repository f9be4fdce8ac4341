"""``run_sfai``: the ``sfai`` command line as the tests run it, in a process of its own, started faster.

A plain ``subprocess.run(["sfai", ...])`` spends most of a short command's second importing SFAI's modules
(SQLAlchemy, pydantic, typer, pandas): the suite runs a few hundred such commands. Here each pytest process keeps one
helper process that has imported them once and forks a child for each command; the child sets the command's
environment, working directory, arguments and standard streams, and runs the console script's entry point as the
``sfai`` script would, so that exit codes, one-line errors (or a traceback) and files written are what a user's shell
sees.

The helper only imports and forks: it opens no database and reads no setting (numpy's and pyarrow's imports start
their thread pools, as in any process that forks its workers after importing them, as SFAI's tabu chains do). A
command whose interpreter would start differently (``PYTHON*``, locale variables) or that reads standard input runs
as a plain subprocess, as does everything where ``SFAI_TEST_PLAIN_CLI=1``. Tests of a command's signals or its own start
(Ctrl-C, SIGTERM, import time) start a real process themselves.
"""

from __future__ import annotations

import atexit
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

SFAI = str(Path(sys.executable).with_name("sfai"))
_STARTUP = ("PYTHON", "LANG", "LC_")  # read once by an interpreter as it starts: such a command gets its own
_PRELOAD = ("serving.cli.main", "pandas", "numpy", "pyarrow", "pyarrow.csv", "optimization.service")

# the helper process's program: read a request, fork, in the child run the command, answer with its exit code
_HELPER = r'''
import importlib, json, os, struct, sys, signal, time
for name in sys.argv[1:]:
    importlib.import_module(name)
from serving.cli.entry import run as entry
req_in, ans_out = os.fdopen(0, "rb"), os.fdopen(1, "wb", buffering=0)
devnull = os.open(os.devnull, os.O_RDONLY)
while True:
    head = req_in.read(4)
    if len(head) < 4:
        break
    req = json.loads(req_in.read(struct.unpack(">I", head)[0]))  # a buffered read: the whole request, however long
    out = os.open(req["stdout"], os.O_WRONLY | os.O_TRUNC)
    err = os.open(req["stderr"], os.O_WRONLY | os.O_TRUNC)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(devnull, 0); os.dup2(out, 1); os.dup2(err, 2)
            for fd in (out, err, devnull):
                os.close(fd)
            os.environ.clear(); os.environ.update(req["env"])
            time.tzset()
            os.chdir(req["cwd"])
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sys.argv = [req["argv0"], *req["args"]]
            try:
                entry()
                code = 0
            except SystemExit as e:  # as the interpreter ends: sys.exit("text") prints it and exits 1
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
                if not isinstance(e.code, int | None):
                    print(e.code, file=sys.stderr)
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            import atexit, threading
            threading._shutdown()
            atexit._run_exitfuncs()
            sys.stdout.flush(); sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out); os.close(err)
    ans_out.write(struct.pack(">i", pid))
    _, status = os.waitpid(pid, 0)
    ans_out.write(struct.pack(">i", os.waitstatus_to_exitcode(status)))
'''


class _Helper:
    def __init__(self) -> None:
        env = dict(os.environ)
        self.env = {k: v for k, v in env.items() if k.startswith(_STARTUP)}
        self.proc = subprocess.Popen([sys.executable, "-c", _HELPER, *_PRELOAD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, cwd=str(Path(__file__).parent.parent))
        self.lock = threading.Lock()
        self.served = 0  # commands answered by a fork

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, args: list[str], env: dict[str, str], cwd: str, timeout: float | None) -> subprocess.CompletedProcess:
        """The command's answer; raises BlockingIOError where the helper is busy with another thread's command."""
        if not self.lock.acquire(blocking=False):
            raise BlockingIOError
        try:
            with tempfile.TemporaryDirectory(prefix="sfai-cli-") as tmp:
                out, err = Path(tmp, "out"), Path(tmp, "err")
                out.touch(), err.touch()
                req = json.dumps({"args": args, "env": env, "cwd": cwd, "argv0": SFAI, "stdout": str(out),
                                  "stderr": str(err)}).encode()
                self.proc.stdin.write(struct.pack(">I", len(req)) + req)
                self.proc.stdin.flush()
                (pid,) = struct.unpack(">i", self._read4())
                killed = threading.Event()
                timer = threading.Timer(timeout, _kill, (pid, killed)) if timeout else None
                if timer:
                    timer.start()
                try:
                    (code,) = struct.unpack(">i", self._read4())
                finally:
                    if timer:
                        timer.cancel()
                stdout, stderr = out.read_text(), err.read_text()
        finally:
            self.lock.release()
        if killed.is_set():
            raise subprocess.TimeoutExpired([SFAI, *args], timeout, stdout, stderr)
        self.served += 1
        return subprocess.CompletedProcess([SFAI, *args], code, stdout, stderr)

    def _read4(self) -> bytes:
        got = self.proc.stdout.read(4)
        if len(got) < 4:  # the helper ended (killed, or its own error on stderr): this command's answer is lost
            raise RuntimeError(f"the sfai helper process ended (exit {self.proc.wait()}); see its error above")
        return got

    def close(self) -> None:
        if self.alive():
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _kill(pid: int, killed: threading.Event) -> None:
    try:
        os.kill(pid, 9)
        killed.set()
    except ProcessLookupError:
        pass


_helper: list[_Helper] = []


def _the_helper() -> _Helper:
    if not _helper or not _helper[0].alive():
        _helper[:] = [_Helper()]
        atexit.register(_helper[0].close)
    return _helper[0]


def run_sfai(*args: str | Path, env: dict[str, str] | None = None, cwd: str | Path | None = None,
             timeout: float | None = 120, input: str | None = None) -> subprocess.CompletedProcess:  # noqa: A002
    """``subprocess.run([sfai, *args], capture_output=True, text=True, ...)``: the same answer, forked from a process
    that has SFAI's modules imported where it can be (see the module's docstring)."""
    env = dict(os.environ if env is None else env)
    cwd = str(cwd or os.getcwd())
    args = [str(a) for a in args]
    helper = None
    if input is None and os.environ.get("SFAI_TEST_PLAIN_CLI") != "1":
        helper = _the_helper()
        if {k: v for k, v in env.items() if k.startswith(_STARTUP)} != helper.env:
            helper = None
    if helper is not None:
        try:
            return helper.run(args, env, cwd, timeout)
        except BlockingIOError:  # another thread's command is running in it: this one gets a process of its own
            pass
    return subprocess.run([SFAI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          input=input)
