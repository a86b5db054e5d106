"""Start a stand-in service as its own process and stop it cleanly (SIMULATED services).

Used by ``agval demo``, the benchmarks and integration tests. The child runs
``python -m agval standin <kind> --world DIR --port 0 --port-file F``; the parent waits
for the port file, and :meth:`ServiceProcess.stop` sends SIGTERM to the child's
process group, waiting for it to exit (SIGKILL after a timeout), so nothing is left
behind even when the parent fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agval.errors import ConfigError
from agval.prefect_env import die_with_parent


@dataclass
class ServiceProcess:
    kind: str
    proc: subprocess.Popen
    port: int
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the process group; SIGKILL if it has not exited after ``timeout`` s."""
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self) -> "ServiceProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_service(kind: str, world: str | Path, *args: str, timeout: float = 60.0,
                  log_dir: str | Path | None = None) -> ServiceProcess:
    """Start ``agval standin <kind>`` on an ephemeral loopback port and wait until it listens."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix=f"agval-{kind}-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    port_file = log_dir / f"{kind}.port"
    port_file.unlink(missing_ok=True)
    log_path = log_dir / f"{kind}.log"
    cmd = [sys.executable, "-m", "agval", "standin", kind, "--world", str(world),
           "--port", "0", "--port-file", str(port_file), *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                preexec_fn=die_with_parent())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return ServiceProcess(kind, proc, int(port_file.read_text().strip()), log_path)
        if proc.poll() is not None:
            raise ConfigError(f"stand-in {kind} exited with code {proc.returncode} before listening:\n"
                              + log_path.read_text()[-2000:])
        time.sleep(0.05)
    ServiceProcess(kind, proc, 0, log_path).stop()
    raise ConfigError(f"stand-in {kind} did not start within {timeout:.0f} s; log: {log_path}")
