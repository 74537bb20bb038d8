"""Big text files written atomically (pagefiles.open_atomic) in large writes that a background thread makes."""
import queue
import threading
from pathlib import Path

from wikiluigi import pagefiles

CHUNK_BYTES = 4 << 20       # one write: the thread waits for the interpreter lock once per chunk, not per page


class Writes:
    """One thread making the files' writes while the caller goes on: copying the text into the page cache is
    a fifth of a training set's CPU at a million pages, and needs no interpreter lock. At most `depth` chunks
    wait; the first error is raised in the caller, at its next write or at drain()."""

    def __init__(self, depth: int = 2):
        self.queue: queue.Queue = queue.Queue(depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="textfiles-writes", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    handle, data = item
                    handle.write(data)
            except BaseException as exc:        # kept for the caller; later chunks are dropped
                self.error = exc
            finally:
                self.queue.task_done()

    def write(self, handle, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((handle, data))

    def drain(self) -> None:
        """Wait for every write asked so far; raise the first that failed."""
        self.queue.join()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def __enter__(self) -> "Writes":
        return self

    def __exit__(self, *error) -> None:
        self.close()


class AtomicText:
    """A UTF-8 text file written under a temporary name through pagefiles.open_atomic (fsync, rename when the
    block ends without error; an error or a kill leaves the old file and a temporary, which
    pagefiles.remove_stale_temporaries removes), in chunks of CHUNK_BYTES made by `writes`."""

    def __init__(self, path: Path, writes: Writes):
        self.path, self.writes = path, writes

    def __enter__(self) -> "AtomicText":
        self.opened = pagefiles.open_atomic(self.path)
        self.handle = self.opened.__enter__()
        self.parts: list[bytes] = []
        self.pending = 0
        return self

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.parts.append(data)
        self.pending += len(data)
        if self.pending >= CHUNK_BYTES:
            self._send()

    def _send(self) -> None:
        self.writes.write(self.handle, b"".join(self.parts))
        self.parts = []
        self.pending = 0

    def __exit__(self, *error):
        try:
            if error[0] is None:
                if self.parts:
                    self._send()
                self.writes.drain()
            else:
                try:
                    self.writes.drain()      # nothing may still write to the file being removed
                except BaseException:
                    pass
        except BaseException as exc:
            self.opened.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self.opened.__exit__(*error)
