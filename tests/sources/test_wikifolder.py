"""wikiluigi.sources.wikifolder: two wikis on one host never share a raw/ folder."""
import pytest

from tests.support.luigi_cli import files, make_data_dir, run_luigi
from tests.tasks.test_process import DUMP, PAGE
from wikiluigi import paths
from wikiluigi.errors import ManifestError
from wikiluigi.sources import wikifolder


def test_another_api_on_the_same_folder_is_refused_naming_both_and_the_fix(data_dir):
    wikifolder.claim("h.example", {"api": "https://h.example/a/api.php"}, "/m/a.yaml")
    wikifolder.claim("h.example", {"api": "http://H.example/a/api.php"}, "/m/a2.yaml")  # the same wiki
    with pytest.raises(ManifestError) as refused:
        wikifolder.claim("h.example", {"api": "https://h.example/b/api.php"}, "/m/b.yaml")
    message = str(refused.value)
    assert message.startswith("/m/b.yaml: ")
    for part in ("'h.example/b/api.php'", "'h.example/a/api.php'", "/m/a.yaml", str(paths.raw_dir("h.example")),
                 "'host' key", "host: h.example-b"):
        assert part in message
    wikifolder.claim("h.example-b", {"api": "https://h.example/b/api.php"}, "/m/b.yaml")  # its own folder


def test_a_torn_record_is_written_again(data_dir):
    record = paths.raw_dir("h") / wikifolder.RECORDS["api"]
    record.parent.mkdir(parents=True)
    record.write_text("")
    wikifolder.claim("h", {"api": "https://h/b/api.php"}, "/m/b.yaml")
    with pytest.raises(ManifestError, match="h/b/api.php"):
        wikifolder.claim("h", {"api": "https://h/a/api.php"}, "/m/a.yaml")


def write_dump(path, base, pages):
    body = "\n".join(PAGE.format(title=t, id=i, text=text) for i, (t, text) in enumerate(pages.items(), start=1))
    path.write_text(DUMP.replace("https://tiny.example.invalid/wiki/Main_Page", base).format(pages=body))
    return path


def test_dumps_of_two_wikis_on_one_host_are_kept_apart(tmp_path):
    """Two wikis under one host (/a/ and /b/), each with a page 'Boat': the second manifest is refused
    rather than given the first's page; with a 'host' key of its own it gets its own."""
    a = write_dump(tmp_path / "a.xml", "https://one.example.invalid/a/index.php/Main", {"Boat": "Wiki A's boat."})
    b = write_dump(tmp_path / "b.xml", "https://one.example.invalid/b/index.php/Main", {"Boat": "Wiki B's boat."})
    data_dir = make_data_dir(tmp_path / "data", {"a": {"dump": str(a), "include_pages": ["Boat"]},
                                                 "b": {"dump": str(b), "include_pages": ["Boat"]}})
    run_luigi(data_dir, "Wikipedia", "--manifest", "a", "--local-scheduler", check_returncode=0)
    refused = run_luigi(data_dir, "Wikipedia", "--manifest", "b", "--local-scheduler")
    assert refused.returncode != 0
    assert "one.example.invalid/b/index.php/" in refused.stderr and "one.example.invalid/a/index.php/" in refused.stderr
    assert "'host' key" in refused.stderr
    raw = data_dir / "raw" / "mediawiki" / "one.example.invalid"
    assert files(raw, ".mediawiki") == {"Boat.mediawiki": b"Wiki A's boat."}

    make_data_dir(tmp_path / "data", {"b": {"dump": str(b), "include_pages": ["Boat"], "host": "one-b"}})
    run_luigi(data_dir, "Wikipedia", "--manifest", "b", "--local-scheduler", check_returncode=0)
    assert (data_dir / "processed" / "mediawiki" / "one-b" / "Boat.md").read_text() == "# Boat\n\nWiki B's boat.\n"
    assert (data_dir / "processed" / "mediawiki" / "one.example.invalid" / "Boat.md").read_text() == \
        "# Boat\n\nWiki A's boat.\n"
