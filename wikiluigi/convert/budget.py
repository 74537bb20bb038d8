"""The convert step of a chunk in a child process, stopped when one page overruns its time or memory
budget, so that the page fails alone and the rest of the chunk goes on.

The child runs `convert.convert_pages` batch after batch, as in-process, and tells the parent before
each step: a page's own step (its clean-up, its filters, pandoc on it alone) may take the page budget,
a batch's pandoc run its own limit (which the child enforces on pandoc itself). A step that runs past
its time, or a child that dies (memory limit, a crash), ends the child; the page of that step gets a
failure record with the reason, and a new child goes on with the rest of the batch. When it was a
batch step, the batch is halved instead. Memory: the child's address space may grow by the budget
(RLIMIT_AS, so a runaway step raises MemoryError on that page), and pandoc's heap is capped with
`+RTS -M` (convert.py).
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import signal
from typing import Mapping

from wikiluigi.convert.pandoc import Budget, ConvertOptions, PageResult, convert_pages, engine_setting

# Time the parent allows on top of a step's own limit: pandoc is stopped by the child itself at
# that limit, and the child then reports the page over budget; this catches a child that stops answering.
GRACE_SECONDS = 15.0
PAGE_GRACE_SECONDS = 2.0


def convert_within_budget(pages: Mapping[str, str], options: ConvertOptions, budget: Budget,
                          engine: str | None = None) -> dict[str, PageResult]:
    """title -> PageResult for every page, converted in child processes under `budget`; `engine`:
    "auto" or "pandoc" (None: luigi.cfg's `[convert] engine`)."""
    engine = engine or engine_setting()
    results: dict[str, PageResult] = {}
    queue = [dict(pages)] if pages else []
    while queue:
        batch = queue.pop()
        outcome = _run_child(batch, options, budget, engine)
        if isinstance(outcome, dict):
            results.update(outcome)
            continue
        done, culprit, reason = outcome
        results.update(done)
        left = {title: text for title, text in batch.items() if title not in done}
        if culprit is not None:
            results[culprit] = PageResult(error=reason)
            left.pop(culprit, None)
            if left:
                queue.append(left)
        elif len(left) == 1:
            (title,) = left
            results[title] = PageResult(error=reason)
        elif left:
            titles = list(left)
            half = len(titles) // 2
            queue.append({t: left[t] for t in titles[half:]})
            queue.append({t: left[t] for t in titles[:half]})
    return {title: results[title] for title in pages}


def _run_child(batch: dict[str, str], options: ConvertOptions, budget: Budget, engine: str):
    """The batch's results, or (results so far, the page of the step that failed or None for a batch
    step, the reason) when the child had to be stopped or died."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(send, batch, options, budget, engine), daemon=True)
    child.start()
    send.close()
    current: str | None = None
    limit: float | None = budget.page_seconds
    try:
        while True:
            wait = None if limit is None else limit + (GRACE_SECONDS if current is None else PAGE_GRACE_SECONDS)
            if not receive.poll(wait):
                reason = budget.over_time() if current is not None else f"over the {limit:g} s budget"
                return {}, current, reason
            try:
                message = receive.recv()
            except EOFError:
                child.join()
                return {}, current, _death(child.exitcode, budget)
            kind, value, seconds = message
            if kind == "step":
                current, limit = value, seconds
            elif kind == "done":
                return value
            else:  # "error": the child could not convert at all (no pandoc): raise it here
                raise value
    finally:
        receive.close()
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)  # the child this function started, by its pid
        child.join()


def _death(exitcode: int | None, budget: Budget) -> str:
    if exitcode is not None and exitcode < 0:
        signal_name = signal.Signals(-exitcode).name
        if -exitcode == signal.SIGKILL:
            return f"the converter was killed on it ({signal_name}; {budget.over_memory()}?)"
        return f"the converter crashed on it ({signal_name})"
    return f"the converter stopped on it (exit status {exitcode})"


def _child(send, batch: dict[str, str], options: ConvertOptions, budget: Budget, engine: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    limited = _memory_limit(budget.memory_mb) if budget.memory_mb else None
    unlimited = resource.getrlimit(resource.RLIMIT_AS)

    def step(title: str | None, seconds: float | None, kind: str) -> None:
        if limited:  # pandoc has its own cap (+RTS -M), and reserves more address space than it uses
            resource.setrlimit(resource.RLIMIT_AS, limited if kind == "python" else unlimited)
        send.send(("step", title, seconds))

    try:
        results = convert_pages(batch, options, budget=budget, on_step=step, engine=engine)
    except Exception as error:  # noqa: BLE001 - handed to the parent, which raises it
        send.send(("error", error, None))
    else:
        send.send(("done", results, None))
    finally:
        send.close()


def _memory_limit(megabytes: int) -> tuple[int, int]:
    """An RLIMIT_AS that lets the address space grow by `megabytes` from here: beyond, allocations
    fail (MemoryError on that page)."""
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * resource.getpagesize()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = size + megabytes * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    return soft, hard
