"""The end-of-run summary of a manifest: pages listed, fetched, converted and failed, counted on disk."""
import time
from dataclasses import dataclass

from wikiluigi import pagefiles, paths
from wikiluigi.errors import PagesFailedError
from wikiluigi.convert.stage import PROCESSED_SUFFIX, EngineCounts, engine_counts, processed_folder
from wikiluigi.sources import derived

# The luigi command imports wikiluigi as it starts: time since then is the run's time so far.
STARTED = time.monotonic()

SUFFIXES = {"fetch": ".mediawiki", "convert": PROCESSED_SUFFIX}


def stage_folder(manifest: str, stage: str, meta=None):
    """Where a stage keeps a manifest's pages: raw/ of its wiki, or its own processed folder."""
    meta = meta or derived.load(manifest)
    return paths.raw_dir(meta.host) if stage == "fetch" else processed_folder(manifest, meta.host)


@dataclass
class Summary:
    manifest: str
    listed: int
    fetched: int
    converted: int
    failures: list[dict]
    seconds: float
    engines: EngineCounts | None = None  # the converted pages by the engine that wrote them

    def render(self) -> str:
        lines = [
            f"wikiluigi summary for manifest {self.manifest!r}:",
            f"  pages listed    {self.listed}",
            f"  fetched         {self.fetched}",
            f"  converted       {self.converted}",
            *engine_lines(self.engines, self.converted),
            f"  failed          {len(self.failures)}",
            f"  time taken      {self.seconds:.1f} s",
        ]
        if self.failures:
            lines.append(f"  failures file   {paths.failures_report(self.manifest)}")
            for record in self.failures[:10]:
                lines.append(f"    {record['title']} ({record['stage']}): {record['reason']}")
            if len(self.failures) > 10:
                lines.append(f"    ... and {len(self.failures) - 10} more")
        return "\n".join(lines)


def engine_lines(engines: EngineCounts | None, converted: int) -> list[str]:
    """The summary's lines on engines: "converted 9,812 pages: 9,790 by the fast path, 22 by pandoc
    (18 a table, 4 a <poem> tag)", then a line per reason pandoc was used, with example titles."""
    if engines is None or not converted:
        return []
    words = f"  engines         converted {converted:,} pages: {engines.fast:,} by the fast path, " \
            f"{engines.pandoc:,} by pandoc"
    if engines.reasons:
        words += " (" + ", ".join(f"{n:,} {why}" for why, n in list(engines.reasons.items())[:5])
        words += ", ...)" if len(engines.reasons) > 5 else ")"
    if engines.unrecorded:
        words += f", {engines.unrecorded:,} not recorded (converted by an earlier version)"
    lines = [words]
    for why, n in list(engines.reasons.items())[:10]:
        examples = ", ".join(repr(title) for title in engines.examples.get(why, []))
        lines.append(f"    by pandoc, {why}: {n:,} (e.g. {examples})")
    if len(engines.reasons) > 10:
        lines.append(f"    ... and {len(engines.reasons) - 10} more reasons")
    return lines


def failed(manifest: str, stage: str) -> list[dict]:
    meta = derived.load(manifest)
    return pagefiles.failures(stage_folder(manifest, stage, meta), meta.titles)


def count(manifest: str, stage: str) -> int:
    return len(derived.load(manifest).titles) - len(_left(manifest, stage))


def _left(manifest: str, stage: str) -> list[str]:
    meta = derived.load(manifest)
    return pagefiles.todo(stage_folder(manifest, stage, meta), SUFFIXES[stage], meta.titles,
                          failed_count_as_done=False)


def engines(manifest: str) -> EngineCounts:
    """The manifest's converted pages by the engine that wrote them."""
    meta = derived.load(manifest)
    left = set(_left(manifest, "convert"))
    return engine_counts(stage_folder(manifest, "convert", meta), [t for t in meta.titles if t not in left])


def collect(manifest: str, stages=("fetch", "convert")) -> Summary:
    meta = derived.load(manifest)
    failures = [record for stage in stages for record in failed(manifest, stage)]
    # A page that failed to fetch is recorded again by convert: keep its first reason only.
    seen: set[str] = set()
    unique = [r for r in failures if not (r["title"] in seen or seen.add(r["title"]))]
    return Summary(
        manifest=manifest, listed=len(meta.titles), fetched=count(manifest, "fetch"),
        converted=count(manifest, "convert") if "convert" in stages else 0,
        failures=unique, seconds=time.monotonic() - STARTED,
        engines=engines(manifest) if "convert" in stages else None,
    )


def finish(manifest: str, stages=("fetch", "convert")) -> Summary:
    """Write and print the summary; raise when pages failed, so the run's exit code says so."""
    result = collect(manifest, stages)
    text = result.render()
    pagefiles.write_atomic(paths.report(manifest), text + "\n")
    pagefiles.remove_stale_temporaries(paths.report(manifest).parent)  # left by a killed run
    rows = "".join(f"{r['title']}\t{r['stage']}\t{r['reason']}\n" for r in result.failures)
    pagefiles.write_atomic(paths.failures_report(manifest), "title\tstage\treason\n" + rows)
    print(text, flush=True)
    if result.failures:
        raise PagesFailedError(
            f"{len(result.failures)} of {result.listed} pages of {manifest!r} failed; the others are done. "
            f"Reasons in {paths.failures_report(manifest)}. Fix or exclude them and run again."
        )
    return result
