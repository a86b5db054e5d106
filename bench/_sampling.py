"""A sampler of this process's peak RSS and thread count, shared by the benchmarks
(``bench/scale.py``, ``bench/qtl_flow.py``). Not a benchmark itself."""

from __future__ import annotations

import threading


class Sampler:
    """Peak RSS and most OS threads of this process while the block runs."""

    def __init__(self, every: float = 0.05):
        import psutil

        self._p = psutil.Process()
        self.every = every
        self.peak_rss = 0
        self.max_threads = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        self.peak_rss = max(self.peak_rss, self._p.memory_info().rss)
        self.max_threads = max(self.max_threads, self._p.num_threads())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def __enter__(self) -> "Sampler":
        self._sample()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self._sample()
