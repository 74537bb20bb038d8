"""The benchmarks' sampler: peak RSS (and PSS) and CPU seconds of a process and all its descendants, every 50 ms."""
import subprocess
import threading
import time

import psutil


def size(text: str) -> int:
    """A page count as the benchmarks' --sizes write it: 10k, 1.5m, 2000."""
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * factor)


def run_measured(command: list[str], what: str, merge_errors: bool = False, **popen) -> tuple[dict, str]:
    """Run a command under a Measure: ({"seconds", "cpu_s", "rss", "pss"}, its output); a failure exits the
    benchmark naming `what` with the end of its errors (`merge_errors`: stderr read with stdout)."""
    measure = Measure()
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_errors else subprocess.PIPE, text=True, **popen)
    measure.watch(proc.pid)
    output, errors = proc.communicate()
    seconds = time.perf_counter() - start
    measure.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{(output if merge_errors else errors)[-6000:]}")
    return {"seconds": seconds, "cpu_s": measure.cpu_s, "rss": measure.peak, "pss": measure.peak_pss}, output


class Measure:
    """The peak of the summed RSS of a process and all its descendants (PSS every fourth poll), and the CPU
    seconds of every process seen in that tree (workers of a forkserver are not children a wait accounts
    for): peak, peak_pss, cpu_s after stop()."""

    def __init__(self):
        self.peak = self.peak_pss = self._polls = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, pid: int) -> None:
        def poll():
            try:
                root = psutil.Process(pid)
            except psutil.NoSuchProcess:
                return
            while not self._stop.is_set():
                rss = pss = 0
                try:
                    for proc in [root, *root.children(recursive=True)]:
                        try:
                            rss += proc.memory_info().rss
                            if self._polls % 4 == 0:
                                pss += proc.memory_full_info().pss
                            times = proc.cpu_times()
                            self.cpu[proc.pid] = times.user + times.system
                        except (psutil.NoSuchProcess, psutil.AccessDenied):
                            pass
                except psutil.NoSuchProcess:
                    return
                self.peak = max(self.peak, rss)
                self.peak_pss = max(self.peak_pss, pss)
                self._polls += 1
                time.sleep(0.05)
        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())
