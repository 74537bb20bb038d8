"""wikiluigi.convert.stage: one processed folder per set of conversion options, none ever deleted for them."""
import json

import luigi
import pytest

from tests.tasks.test_process import write_dump
from wikiluigi import pagefiles, paths
from wikiluigi.convert import stage
from wikiluigi.convert.pandoc import ConvertOptions
from wikiluigi.sources.fetch import fetch_pages
from wikiluigi.sources.manifest import DEFAULT_DROP_SECTIONS
from wikiluigi.sources.source import DumpSource

DEFAULTS = ConvertOptions(drop_sections=DEFAULT_DROP_SECTIONS)
NO_TRIVIA = ConvertOptions(drop_sections=DEFAULT_DROP_SECTIONS + ("Trivia",))
TABLES = ConvertOptions(drop_sections=DEFAULT_DROP_SECTIONS, keep_tables=True)
BOAT = "A boat.\n\n{|\n| Length || 9 m\n|}\n\n== Trivia ==\nIt floats.\n"


def folder_files(folder):
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_each_set_of_options_converts_into_its_own_folder_and_none_is_deleted(data_dir):
    pagefiles.write_atomic(paths.raw_page("h", "Boat"), BOAT)
    first = stage.process_pages("h", ["Boat", "Not fetched"], DEFAULTS)
    assert first.folder == paths.processed_dir("h") == data_dir / "processed" / "mediawiki" / "h"
    assert (first.folder / "Boat.md").read_text() == "# Boat\n\nA boat.\n\n## Trivia\n\nIt floats.\n"
    kept = folder_files(first.folder)
    assert "Boat.md" in kept and ".failed/Not fetched.json" in kept

    second = stage.process_pages("h", ["Boat"], NO_TRIVIA)
    third = stage.process_pages("h", ["Boat"], TABLES)
    assert second.converted == third.converted == 1
    assert folder_files(first.folder) == kept  # the default options' pages and failures untouched
    assert second.folder.name == "h~" + stage.options_record(NO_TRIVIA)["fingerprint"][:12]
    assert (second.folder / "Boat.md").read_text() == "# Boat\n\nA boat.\n"
    assert "| Length | 9 m |" in (third.folder / "Boat.md").read_text()
    recorded = json.loads((third.folder / ".options.json").read_text())
    assert recorded["options"]["keep_tables"] is True and recorded == stage.options_record(TABLES)
    assert paths.processed_dirs("h") == [first.folder, *sorted([second.folder, third.folder])]

    # Each again: nothing left to do in its own folder.
    assert stage.process_pages("h", ["Boat"], NO_TRIVIA).converted == 0
    assert stage.process_pages("h", ["Boat"], DEFAULTS).converted == 0


def test_a_manifest_reads_the_folder_of_its_own_options(data_dir):
    originals = paths.original_manifest_dirs()[0]
    originals.mkdir(parents=True)
    (originals / "plain.yaml").write_text("api: https://h.example/w/api.php\ninclude_pages: [Boat]\n")
    (originals / "trimmed.yaml").write_text("api: https://h.example/w/api.php\ninclude_pages: [Boat]\n"
                                            "drop_sections: [Trivia]\n")
    assert stage.processed_folder("plain") == paths.processed_dir("h.example")
    assert stage.processed_folder("trimmed") == stage.options_folder("h.example", NO_TRIVIA) != \
        paths.processed_dir("h.example")


def test_a_legacy_folder_with_other_options_is_renamed_to_their_folder_not_deleted(data_dir):
    """Earlier versions kept one folder per wiki and deleted it when another manifest's options came."""
    legacy = paths.processed_dir("h")
    pagefiles.write_atomic(legacy / "Boat.md", "# Boat\n\nA boat.\n")
    pagefiles.record_failure(legacy, "Oar", "convert", "pandoc said no")
    pagefiles.write_json(legacy / stage.OPTIONS_FILE, stage.options_record(NO_TRIVIA))
    before = {name: data for name, (data, _) in folder_files(legacy).items()}

    assert stage.options_folder("h", DEFAULTS) == legacy  # the default options' folder: the legacy one moved away
    moved = stage.options_folder("h", NO_TRIVIA)
    assert moved != legacy and {name: data for name, (data, _) in folder_files(moved).items()} == before
    assert not legacy.exists()
    assert pagefiles.todo(moved, ".md", ["Boat", "Oar"]) == []  # its pages and failures count as done


def test_a_legacy_folder_meeting_its_options_folder_fills_it_in_and_is_kept_aside(data_dir):
    target = stage.use_options("h", NO_TRIVIA)
    pagefiles.write_atomic(target / "Boat.md", "new boat")
    legacy = paths.processed_dir("h")
    pagefiles.write_atomic(legacy / "Boat.md", "old boat")
    pagefiles.write_atomic(legacy / "Oar.md", "old oar")
    pagefiles.write_json(legacy / stage.OPTIONS_FILE, stage.options_record(NO_TRIVIA))

    assert stage.options_folder("h", NO_TRIVIA) == target
    assert (target / "Boat.md").read_text() == "new boat" and (target / "Oar.md").read_text() == "old oar"
    [aside] = legacy.parent.glob(".legacy-h-*")
    assert (aside / "Boat.md").read_text() == "old boat"  # what the target had already: kept, not deleted
    assert not legacy.exists()


def test_a_page_fetched_anew_clears_its_convert_failure_in_every_processed_folder(data_dir, tmp_path):
    dump = write_dump(tmp_path / "tiny.xml", {"Boat": BOAT})
    folders = [stage.use_options("h", options) for options in (DEFAULTS, NO_TRIVIA, TABLES)]
    for folder in folders:
        pagefiles.record_failure(folder, "Boat", "convert", "not fetched: the raw page is missing")
    assert fetch_pages(DumpSource(dump), "h", ["Boat"]).fetched == 1
    assert [pagefiles.failures(folder) for folder in folders] == [[], [], []]
    assert all(stage.process_pages("h", ["Boat"], options).converted == 1 for options in (DEFAULTS, NO_TRIVIA, TABLES))


def test_a_host_with_a_tilde_is_refused_in_processed(data_dir):
    with pytest.raises(paths.PathError, match="'~'.*'host' key"):
        paths.processed_dir("h~0123456789ab")


def test_the_report_and_the_engines_log_say_which_engine_wrote_each_page(data_dir):
    """The fast path writes a plain page, pandoc a kept table; engine = pandoc sends it all to pandoc.
    The log keeps the last entry of a page, skips a line torn by a kill, groups exceptions by type."""
    pagefiles.write_atomic(paths.raw_page("h", "Boat"), BOAT)
    pagefiles.write_atomic(paths.raw_page("h", "Oar"), "An oar.\n\n== Use ==\nIt rows.\n")
    report = stage.process_pages("h", ["Boat", "Oar"], TABLES)
    assert (report.converted, report.fast, report.pandoc) == (2, 1, {"Boat": "a table"})
    counts = stage.engine_counts(report.folder, ["Boat", "Oar"])
    assert (counts.fast, counts.pandoc, counts.reasons, counts.examples, counts.unrecorded) == \
        (1, 1, {"a table": 1}, {"a table": ["Boat"]}, 0)

    log = stage.engines_log(report.folder)
    with open(log, "a", encoding="utf-8") as handle:  # a later run's entry for Oar, then a torn line
        handle.write(json.dumps({"fast": [], "pandoc": {"Oar": "the fast path failed: KeyError: 'x'"}}) + "\n")
        handle.write('{"fast": ["Bo')
    counts = stage.engine_counts(report.folder, ["Boat", "Oar", "Never logged"])
    assert (counts.fast, counts.pandoc, counts.unrecorded) == (0, 2, 1)
    assert counts.reasons == {"a table": 1, "the fast path failed: KeyError": 1}

    config = luigi.configuration.get_config()
    before = config.get("convert", "engine", None)
    config.set("convert", "engine", "pandoc")
    try:
        everything = stage.process_pages("h", ["Oar"], DEFAULTS)
    finally:
        if before is None:
            config.remove_option("convert", "engine")
        else:
            config.set("convert", "engine", before)
    assert (everything.fast, everything.pandoc) == (0, {"Oar": stage.ENGINE_PANDOC})
    assert stage.engine_counts(everything.folder, ["Oar"]).reasons == {stage.ENGINE_PANDOC: 1}
