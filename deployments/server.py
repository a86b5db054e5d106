"""Start and stop a local Prefect server on 127.0.0.1 (a free port, analytics off).

:func:`start_server` runs ``prefect server start --host 127.0.0.1 --port <free>`` in its
own process group, with ``PREFECT_HOME`` under agval's state folder (the SQLite DB,
``<state>/prefect-server/prefect.db``, persists between starts: 14 s on a new DB,
~5 s after), waits for ``/api/health`` and returns a :class:`LocalServer` whose
:meth:`~LocalServer.stop` terminates the whole group (SIGTERM, then SIGKILL). It is a
context manager, so a failure in between still stops the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agval.errors import ConfigError
from agval.prefect_env import die_with_parent

SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    proc: subprocess.Popen
    port: int
    home: Path
    log_path: Path
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def ui_url(self) -> str:
        return self.url

    def healthy(self, timeout: float = 2.0) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.api_url}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group; SIGKILL after ``timeout`` s."""
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        return stop_group(self.proc, timeout)

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_group(proc: subprocess.Popen, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
    """Signal ``proc``'s process group (it must lead one), wait, SIGKILL the group on timeout."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # children may outlive the leader: kill what is left of the group
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass
    return proc.returncode


def start_server(*, port: int | None = None, home: str | Path | None = None, timeout: float = 120.0,
                 log_path: str | Path | None = None, env: dict[str, str] | None = None) -> LocalServer:
    """Start ``prefect server start`` on 127.0.0.1 and wait for ``/api/health``."""
    import httpx

    from agval.paths import state_dir

    home = Path(home or state_dir() / "prefect-server").absolute()
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = Path(log_path or home / "server.log")
    child_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    child_env.update(SERVER_ENV)
    child_env["PREFECT_HOME"] = str(home)
    child_env["PREFECT_SERVER_API_HOST"] = "127.0.0.1"
    # The UI asks the server where its API is (/ui-settings); without these it answers the
    # default port 4200 and the UI cannot connect when we listen elsewhere.
    child_env["PREFECT_SERVER_API_PORT"] = str(port)
    child_env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    child_env.update(env or {})
    prefect_bin = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect_bin)] if prefect_bin.exists() else [sys.executable, "-m", "prefect"]
    cmd += ["server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env, start_new_session=True,
                                preexec_fn=die_with_parent())
    server = LocalServer(proc, port, home, log_path)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ConfigError(f"the Prefect server exited with code {proc.returncode} before answering; "
                                  f"log {log_path}:\n" + log_path.read_text()[-3000:])
            try:
                if httpx.get(f"{server.api_url}/health", timeout=2.0).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise ConfigError(f"the Prefect server did not answer on {server.api_url}/health within {timeout:.0f} s; "
                          f"log {log_path}")
    except BaseException:
        server.stop()
        raise
