"""The tests carry their own data: every fixture lives in tests/fixtures, named with its source and licence."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# A path out of the repository to the old shared folder: "../shared", ".parent / 'shared'", "shared/fixtures".
OUTSIDE = re.compile(rb"""\.\./shared\b|shared/fixtures|\.parent\s*/\s*["']shared["']|["']\.\.["']\s*/\s*["']shared["']""")


def test_no_test_or_benchmark_reads_files_beside_the_repository():
    found = []
    for top in ("README.md", "tests", "benchmarks", "scripts", ".ci"):
        for path in [ROOT / top] if top == "README.md" else sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path != Path(__file__).resolve():
                for number, line in enumerate(path.read_bytes().splitlines(), 1):
                    if OUTSIDE.search(line):
                        found.append(f"{path.relative_to(ROOT)}:{number}: {line.decode(errors='replace').strip()}")
    assert found == [], "files outside the repository are read; put them in tests/fixtures:\n" + "\n".join(found)


def test_every_fixture_file_has_its_source_and_licence_in_the_readme():
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    files = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
                   if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts)
    assert files == ["startrek-dump.xml", "wikipedia/enwiki-articles-sample.xml.bz2",
                     "wikipedia/enwiki-table-markup.xml.bz2"]
    rows = {row.split("|")[1].strip().strip("`"): row for row in readme.splitlines() if row.startswith("| `")}
    assert sorted(rows) == files
    for name in files:
        licence = rows[name].split("|")[4]
        assert "CC BY-SA 4.0" in licence if name.startswith("wikipedia/") else "MIT" in licence, name
    assert "Wikipedia's contributors" in rows["wikipedia/enwiki-articles-sample.xml.bz2"]
    assert "project's own writing" in rows["startrek-dump.xml"]


def test_the_wiki_fixtures_default_to_the_repositorys_own_folder():
    env = {k: v for k, v in os.environ.items() if k != "WIKILUIGI_FIXTURES_DIR"}
    out = subprocess.run([sys.executable, "-c", "from tests.support import wiki_fixtures as w; "
                          "print(w.STARTREK_DUMP, w.ENWIKI_DUMP, w.ENWIKI_TABLES_DUMP, sep='\\n')"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(FIXTURES / "startrek-dump.xml"), str(FIXTURES / "wikipedia" / "enwiki-articles-sample.xml.bz2"),
                   str(FIXTURES / "wikipedia" / "enwiki-table-markup.xml.bz2")]
    assert all(Path(path).is_file() for path in out)
