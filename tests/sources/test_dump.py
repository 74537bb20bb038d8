"""wikiluigi.sources.dump against real exports (the Star Trek probe wiki, an English Wikipedia excerpt), the shipped
demo wiki, and broken or unusual exports made on the spot."""
import bz2
import gzip
import re
import tracemalloc
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape, unescape

import pytest
import yaml

from wikiluigi import paths
from wikiluigi.errors import DumpError
from wikiluigi.sources import dump

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STARTREK = FIXTURES / "startrek-dump.xml"
ENWIKI = FIXTURES / "wikipedia" / "enwiki-articles-sample.xml.bz2"
TABLES = FIXTURES / "wikipedia" / "enwiki-table-markup.xml.bz2"
MANIFESTS = paths.PACKAGE_MANIFESTS
DEMO = MANIFESTS / "demo-wiki.xml"

STARTREK_REDIRECTS = {
    "Kirk": "James T. Kirk",
    "Captain Picard": "Jean-Luc Picard",
    "NCC-1701": "USS Enterprise (NCC-1701)",
    "Mr. Spock": "Spock",
}


def pages_by_title(path, **kwargs):
    return {page.title: page for page in dump.iter_pages(path, **kwargs)}


def raw_texts(path):
    """Title -> (text, bytes attribute) read from the XML with a regex: an oracle independent of ElementTree."""
    xml = Path(path).read_text(encoding="utf-8")
    found = {}
    for page in re.findall(r"<page>.*?</page>", xml, re.S):
        title = unescape(re.search(r"<title>(.*?)</title>", page).group(1), {"&quot;": '"'})
        *_, (size, text) = re.findall(r'<text bytes="(\d+)"[^>]*>(.*?)</text>', page, re.S)
        found[title] = unescape(text, {"&quot;": '"'}), int(size)
    return found


# --- the Star Trek probe export (schema 0.11, written by MediaWiki 1.39) ---

def test_startrek_siteinfo():
    site = dump.read_siteinfo(STARTREK)
    assert site.sitename == "Test Wiki"
    assert site.dbname == "testwiki"
    assert site.base_url == "http://127.0.0.1:8080/index.php/Main_Page"
    assert site.host == "127.0.0.1:8080"
    assert site.namespaces == {0: "", 10: "Template", 14: "Category"}
    assert site.case == "first-letter"
    assert site.category_names == ("Category",)


def test_startrek_counts_and_redirects():
    pages = list(dump.iter_pages(STARTREK))
    assert len(pages) == 49
    assert Counter(page.ns for page in pages) == {0: 31, 14: 11, 10: 7}
    assert {p.title: p.redirect_target for p in pages if p.is_redirect} == STARTREK_REDIRECTS
    articles = [p for p in pages if p.ns == 0 and not p.is_redirect]
    assert len(articles) == 27
    assert len({p.page_id for p in pages}) == 49
    assert all(p.model == "wikitext" for p in pages)


def test_startrek_texts_equal_the_xml():
    oracle = raw_texts(STARTREK)
    pages = pages_by_title(STARTREK)
    assert pages.keys() == oracle.keys()
    for title, page in pages.items():
        text, size = oracle[title]
        assert page.text == text, title
        assert len(page.text.encode("utf-8")) == size, title  # the export's own byte count agrees
    spock = pages["Spock"]
    assert (spock.page_id, spock.revision_id, spock.timestamp) == (118, 1118, "2024-01-15T12:00:00Z")
    assert spock.text.startswith("{{Infobox character\n| name        = Spock\n")
    assert '<ref name="ency"/>' in spock.text and "<!-- hidden editor comment -->" in spock.text
    assert spock.text.endswith("[[Category:Vulcans|Spock]]\n[[Category:Star Trek characters]]\n")


def test_startrek_category_links():
    site = dump.read_siteinfo(STARTREK)
    pages = pages_by_title(STARTREK)

    def cats(title):
        return dump.category_links(pages[title].text, site.category_names)

    assert cats("Spock") == ["Category:Vulcans", "Category:Star Trek characters"]  # one with a sort key
    assert cats("Vulcan (planet)") == ["Category:Planets", "Category:Vulcans"]  # the page in two categories
    assert cats("Worf") == ["Category:Klingons", "Category:Star Trek characters"]
    assert cats("Template:Infobox character") == ["Category:Infobox templates"]  # inside <noinclude>
    assert cats("Mr. Spock") == ["Category:Star Trek"]  # a redirect that is a category member
    assert cats("Kirk") == []
    # The category tree: every category page names its parent.
    parents = {t: cats(t) for t, p in pages.items() if p.ns == 14}
    assert parents["Category:Star Trek"] == []
    assert parents["Category:Vulcans"] == ["Category:Star Trek characters"]
    assert parents["Category:Federation starships"] == ["Category:Starships"]
    assert parents["Category:Star Trek characters"] == ["Category:Star Trek"]
    # Every category any page names has its own category page in this export.
    named = {c for p in pages.values() for c in dump.category_links(p.text)}
    assert named == set(parents)


# --- an English Wikipedia excerpt (schema 0.10, bzip2) ---

@pytest.fixture(scope="module")
def enwiki():
    """Title -> page of the Wikipedia excerpt, read once for the tests below."""
    return pages_by_title(ENWIKI)


def test_enwiki_bz2_pages_and_redirects(enwiki):
    pages = enwiki
    assert len(pages) == 206
    redirects = {t: p.redirect_target for t, p in pages.items() if p.is_redirect}
    assert len(redirects) == 100
    assert redirects["AccessibleComputing"] == "Computer accessibility"
    assert redirects["AcademyAwards/BestPicture"] == "Academy Award for Best Picture"
    assert redirects["Wikipedia:Adding Wikipedia articles to Nupedia"] == "Wikipedia:Nupedia and Wikipedia"
    assert Counter(p.ns for p in pages.values()) == {0: 205, 4: 1}
    assert pages["Wikipedia:Adding Wikipedia articles to Nupedia"].ns == 4
    anarchism = pages["Anarchism"]
    assert anarchism.page_id == 12 and anarchism.text.startswith("{{Redirect2|Anarchist|Anarchists")
    assert len(anarchism.text) > 50_000 and not anarchism.is_redirect
    assert pages["Albert Einstein"].timestamp.endswith("Z")


def test_enwiki_siteinfo():
    site = dump.read_siteinfo(ENWIKI)
    assert (site.sitename, site.dbname, site.host) == ("Wikipedia", "enwiki", "en.wikipedia.org")
    assert site.namespaces[14] == "Category" and site.namespaces[4] == "Wikipedia"
    assert site.namespaces[0] == "" and len(site.namespaces) == 35
    assert site.namespace_aliases["Image"] == 6 and site.namespace_aliases["Project"] == 4


def test_enwiki_category_links_of_real_articles(enwiki):
    pages = enwiki
    aristotle = dump.category_links(pages["Aristotle"].text)
    assert aristotle[:3] == ["Category:Aristotle", "Category:384 BC", "Category:322 BC"]
    assert "Category:Ancient Greek philosophers" in aristotle and len(aristotle) == 39
    # A category commented out by an editor does not count.
    assert "<!-- [[Category:Animal classes]]" in pages["Amphibian"].text
    assert dump.category_links(pages["Amphibian"].text) == [
        "Category:Amphibians", "Category:Amphibious organisms", "Category:Extant Late Devonian first appearances"]
    # [[:Category:X]] is a link to the category, not a membership.
    atlantic = dump.category_links(pages["Atlantic Ocean"].text)
    assert "[[:Category:Shipwrecks in the Atlantic Ocean|" in pages["Atlantic Ocean"].text
    assert "Category:Shipwrecks in the Atlantic Ocean" not in atlantic
    assert atlantic[:2] == ["Category:Atlantic Ocean", "Category:Oceans"]
    assert not any("Derelict" in c for c in dump.category_links(pages["Apollo 8"].text))
    assert "Category:École Normale Supérieure alumni" in dump.category_links(pages["Alain Connes"].text)


def test_enwiki_categories_have_no_category_pages(enwiki):
    pages = list(enwiki.values())
    named = {c for p in pages for c in dump.category_links(p.text)}
    assert len(named) > 800
    assert not [p for p in pages if p.ns == 14]


def test_an_export_without_siteinfo_still_yields_its_pages():
    site = dump.read_siteinfo(TABLES)
    assert (site.sitename, site.host, site.namespaces) == ("", "", {})
    assert site.category_names == ("Category",)
    titles = [p.title for p in dump.iter_pages(TABLES)]
    assert titles == ["Constructive vote of no confidence", "List of Prison Break characters",
                      "Academy Award for Best Production Design", "Economy of Estonia", "Brahui language"]


# --- the titles filter ---

def test_titles_filter_yields_only_those_in_file_order():
    got = [p.title for p in dump.iter_pages(STARTREK, titles={"Warp_drive", "Spock", "No such page"})]
    assert got == ["Spock", "Warp drive"]
    assert list(dump.iter_pages(STARTREK, titles=set())) == []
    assert [p.title for p in dump.iter_pages(ENWIKI, titles=["Algeria"])] == ["Algeria"]


def test_titles_filter_stops_once_all_were_found(tmp_path):
    # The file breaks off after Sarek: a full pass fails, a pass that wants only Spock never gets there.
    xml = STARTREK.read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(xml[: xml.index(b"<title>Tuvok</title>")])
    assert [p.title for p in dump.iter_pages(cut, titles={"Spock"})] == ["Spock"]
    with pytest.raises(DumpError, match=re.escape(str(cut)) + ".*truncated"):
        list(dump.iter_pages(cut))


# --- the demo wiki shipped with the package ---

def test_demo_siteinfo_and_counts():
    site = dump.read_siteinfo(DEMO)
    assert (site.host, site.dbname) == ("demo.wikiluigi.invalid", "demowiki")
    assert site.base_url == "https://demo.wikiluigi.invalid/wiki/Main_Page"
    assert (site.namespaces[6], site.namespaces[10], site.namespaces[14]) == ("File", "Template", "Category")
    pages = list(dump.iter_pages(DEMO))
    assert len(pages) == 47
    assert Counter(p.ns for p in pages) == {0: 36, 14: 7, 10: 4}
    assert {p.title: p.redirect_target for p in pages if p.is_redirect} == {
        "Hask Island": "Hask", "Ornvag": "Ørnvåg", "Alkyone": "Αλκυόνη"}
    titles = {p.title for p in pages}
    assert {"Ferry timetable/Winter", "Salt & Tar Inn", "Ørnvåg", "Αλκυόνη"} <= titles
    assert DEMO.stat().st_size < 300_000


def test_demo_takes_the_last_of_several_revisions():
    xml = DEMO.read_text(encoding="utf-8")
    fennick = xml[xml.index("<title>Fennick Light</title>"):]
    fennick = fennick[: fennick.index("</page>")]
    assert fennick.count("<revision>") == 2 and "It was built in 1861." in fennick  # the stub comes first
    page = pages_by_title(DEMO, titles={"Fennick Light"})["Fennick Light"]
    assert (page.revision_id, page.timestamp) == (1021, "2024-02-09T10:25:00Z")
    assert "== Automation ==" in page.text and page.text == raw_texts(DEMO)["Fennick Light"][0]


def demo_tree():
    """Category -> member titles (categories included), from the pages' own links."""
    site = dump.read_siteinfo(DEMO)
    members = {}
    for page in dump.iter_pages(DEMO):
        for category in dump.category_links(page.text, site.category_names):
            members.setdefault(category, []).append(page.title)
    return members


def test_demo_category_tree():
    members = demo_tree()
    root = yaml.safe_load((MANIFESTS / "demo.yaml").read_text())["include_categories"][0]
    assert root == "Category:Myrling Isles"
    subcategories = [t for t in members[root] if t.startswith("Category:")]
    assert len(subcategories) == 4
    assert "Category:Myrling festivals" in members["Category:Myrling culture"]  # the sub-subcategory
    assert "Ilse Varrow" in members["Category:Myrling people"]
    assert "Ilse Varrow" in members["Category:Boats of the Myrling Isles"]
    assert "Tamsin Greel" in members["Category:Myrling people"]  # written [[Category:Myrling_people]]
    assert "Osric Dunmere" in members["Category:Myrling people"]  # written [[category:Myrling people]]
    assert members["Category:Articles needing photographs"] == ["Brannay"]  # no category page: like Wikipedia
    assert "Tollan" not in members["Category:Articles needing photographs"]  # commented out there
    assert "Main Page" not in {t for ts in members.values() for t in ts}

    seen, todo, articles = set(), [root], set()
    while todo:
        category = todo.pop()
        seen.add(category)
        for title in members.get(category, []):
            if title.startswith("Category:"):
                if title not in seen:
                    todo.append(title)
            else:
                articles.add(title)
    assert len(seen) == 6
    assert len(articles) == 33  # 32 articles and the redirect Alkyone


def test_demo_articles_are_real_prose_with_the_features_the_pipeline_must_handle():
    pages = [p for p in dump.iter_pages(DEMO) if p.ns == 0 and not p.is_redirect and p.title != "Main Page"]
    assert 30 <= len(pages) <= 40
    for page in pages:
        prose = re.sub(r"\{\{.*?\}\}|<ref[^>]*>.*?</ref>|\[\[Category:[^\]]*\]\]", "", page.text, flags=re.S)
        words = len(re.findall(r"\w+", prose))
        assert 150 <= words <= 600, (page.title, words)
        assert len(re.findall(r"^==[^=].*==\s*$", page.text, re.M)) >= 2, page.title
    text = "\n".join(p.text for p in pages)
    for feature in ("{{Infobox island", "{{Infobox person", "{{Quote|", "{{Main|", "<references />",
                    "<gallery>", "[[File:", "|thumb|", '{| class="wikitable', "<!--", "{{DEFAULTSORT:",
                    "== See also ==", "== References ==", "== External links ==", "[[:Category:"):
        assert feature in text, feature
    assert re.search(r'<ref name="(\w+)">.*?<ref name="\1" />', text, re.S)  # a named ref used again


# --- category_links on its own ---

@pytest.mark.parametrize("wikitext, expected", [
    ("[[Category:Boats]]", ["Category:Boats"]),
    ("[[Category:Boats|Yole]] [[Category:Boats]]", ["Category:Boats"]),
    ("[[category:boats_of the  isles]]", ["Category:Boats of the isles"]),
    ("[[ Category : Boats ]]", ["Category:Boats"]),
    ("[[CATEGORY:Boats]]", ["Category:Boats"]),
    ("[[:Category:Boats]] [[:category:Ships|ships]]", []),
    ("<nowiki>[[Category:Boats]]</nowiki> [[Category:Ships]]", ["Category:Ships"]),
    ("<!-- [[Category:Boats]] --> [[Category:Ships]]", ["Category:Ships"]),
    ("[[Category:Ships]] <!-- never closed [[Category:Boats]]", ["Category:Ships"]),
    ("<includeonly>[[Category:Boats]]</includeonly><noinclude>[[Category:Templates]]</noinclude>",
     ["Category:Templates"]),
    ("<pre>[[Category:Boats]]</pre>", []),
    ("[[Category:Rock &amp; roll]] [[Category:AT&T]] [[Category:&#214;l#Section]]",
     ["Category:Rock & roll", "Category:AT&T", "Category:Öl"]),
    ("[[Category:Ørnvåg]] [[Category:ελληνικά]]", ["Category:Ørnvåg", "Category:Ελληνικά"]),
    ("[[Category:]] [[Categoryx:Boats]] [[Boats]] [[Category|Boats]]", []),
    ("[[en:Category:Boats]] [[Template:Category:Boats]]", []),
])
def test_category_links(wikitext, expected):
    assert dump.category_links(wikitext, ["Category"]) == expected


def test_category_links_with_localised_names():
    text = "[[Kategorie:Schiffe]] [[kategorie:Häfen|x]] [[Category:Inseln]] [[Kategorie_:Leuchttürme]]"
    assert dump.category_links(text, ("Kategorie", "Category")) == [
        "Kategorie:Schiffe", "Kategorie:Häfen", "Kategorie:Inseln", "Kategorie:Leuchttürme"]
    assert dump.category_links(text, "Kategorie") == ["Kategorie:Schiffe", "Kategorie:Häfen", "Kategorie:Leuchttürme"]
    assert dump.category_links("[[Category:iPhone]]", capitalize=False) == ["Category:iPhone"]
    with pytest.raises(ValueError):
        dump.category_links("[[Category:X]]", [])


# --- unusual but valid exports ---

def export(pages, xmlns="http://www.mediawiki.org/xml/export-0.11/", siteinfo=True):
    head = (f'<mediawiki xmlns="{xmlns}" version="0.11" xml:lang="de">\n' if xmlns
            else '<mediawiki version="0.3" xml:lang="de">\n')
    if siteinfo:
        head += ("<siteinfo><sitename>Inselwiki</sitename><dbname>inselwiki</dbname>"
                 "<base>https://inseln.example/wiki/Hauptseite</base><case>first-letter</case><namespaces>"
                 '<namespace key="0" case="first-letter" /><namespace key="6" case="first-letter">Datei</namespace>'
                 '<namespace key="14" case="first-letter">Kategorie</namespace></namespaces></siteinfo>\n')
    return head + "".join(pages) + "</mediawiki>\n"


def page(title, *revisions, ns=0, page_id=1, extra=""):
    body = "".join(
        f"<revision><id>{rid}</id><timestamp>{ts}</timestamp><contributor><ip>10.0.0.1</ip></contributor>"
        f"<model>wikitext</model><format>text/x-wiki</format>"
        f'<text bytes="{len(text.encode())}" xml:space="preserve">{escape(text)}</text><sha1/></revision>'
        for rid, ts, text in revisions)
    return f"<page><title>{escape(title)}</title><ns>{ns}</ns><id>{page_id}</id>{extra}{body}</page>\n"


@pytest.mark.parametrize("xmlns", ["http://www.mediawiki.org/xml/export-0.8/",
                                   "http://www.mediawiki.org/xml/export-0.10/", None])
def test_any_schema_namespace(tmp_path, xmlns):
    path = tmp_path / "x.xml"
    path.write_text(export([page("Hafen", (5, "2020-01-01T00:00:00Z", "[[Kategorie:Orte]] Text"))], xmlns))
    site = dump.read_siteinfo(path)
    assert site.host == "inseln.example" and site.category_names == ("Kategorie", "Category")
    (hafen,) = dump.iter_pages(path)
    assert (hafen.title, hafen.revision_id, hafen.text) == ("Hafen", 5, "[[Kategorie:Orte]] Text")
    assert dump.category_links(hafen.text, site.category_names) == ["Kategorie:Orte"]


def test_last_revision_wins_and_redirects_without_a_redirect_element(tmp_path):
    path = tmp_path / "history.xml"
    path.write_text(export([
        page("Hafen", (1, "2020-01-01T00:00:00Z", "alt"), (2, "2021-01-01T00:00:00Z", "mittel"),
             (3, "2022-01-01T00:00:00Z", "neu"), page_id=7),
        page("Port", (4, "2022-01-01T00:00:00Z", "#REDIRECT [[hafen_alt#Kai]]"), page_id=8),
        page("Leer", page_id=9),
        page("Mehr", (10, "2022-01-01T00:00:00Z", "#WEITERLEITUNG [[Hafen]]"), page_id=11,
             extra='<redirect title="Hafen" />'),
    ]))
    pages = pages_by_title(path)
    assert (pages["Hafen"].text, pages["Hafen"].revision_id, pages["Hafen"].page_id) == ("neu", 3, 7)
    assert pages["Hafen"].timestamp == "2022-01-01T00:00:00Z"
    assert pages["Port"].redirect_target == "Hafen alt"
    assert (pages["Leer"].text, pages["Leer"].revision_id) == ("", None)
    assert pages["Mehr"].redirect_target == "Hafen"  # the element wins over a magic word we do not know


def test_other_slots_of_a_revision_are_not_its_text(tmp_path):
    path = tmp_path / "slots.xml"
    path.write_text(export([
        '<page><title>File:Boot.jpg</title><ns>6</ns><id>3</id><revision><id>30</id>'
        "<timestamp>2020-01-01T00:00:00Z</timestamp><contributor><username>A</username><id>1</id></contributor>"
        "<origin>30</origin><model>wikitext</model><format>text/x-wiki</format>"
        '<text bytes="4" sha1="x" xml:space="preserve">Boot</text>'
        "<content><role>mediainfo</role><origin>30</origin><model>wikibase-mediainfo</model>"
        '<format>application/json</format><text bytes="2" xml:space="preserve">{}</text></content>'
        "<sha1>y</sha1></revision></page>\n"]))
    (boot,) = dump.iter_pages(path)
    assert (boot.text, boot.model, boot.ns) == ("Boot", "wikitext", 6)


def test_compression_is_detected_by_content_not_by_name(tmp_path):
    xml = STARTREK.read_bytes()
    disguised = tmp_path / "really-bzip2.xml"
    disguised.write_bytes(bz2.compress(xml))
    plain = tmp_path / "really-plain.xml.bz2"
    plain.write_bytes(xml)
    gz = tmp_path / "startrek.xml.gz"
    gz.write_bytes(gzip.compress(xml))
    expected = [(p.title, p.text) for p in dump.iter_pages(STARTREK)]
    for path in (disguised, plain, gz):
        assert [(p.title, p.text) for p in dump.iter_pages(path)] == expected, path.name
        assert dump.read_siteinfo(path).host == "127.0.0.1:8080"


# --- errors name the file and say what is wrong ---

def test_missing_file(tmp_path):
    missing = tmp_path / "nope.xml.bz2"
    with pytest.raises(DumpError, match=re.escape(str(missing)) + ".*no such file"):
        list(dump.iter_pages(missing))
    with pytest.raises(DumpError, match="no such file"):
        dump.read_siteinfo(missing)
    with pytest.raises(DumpError, match="folder"):
        dump.read_siteinfo(tmp_path)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"   \n", "is empty"),
    (b"title,text\nSpock,Vulcan\n", "not XML"),
    (b"PK\x03\x04 a zip file", "not XML"),
    (b"<<<>>> not really", "not XML"),
    (b"<html><body>Not found</body></html>", "not a MediaWiki export.*<html>"),
    (b"7z\xbc\xaf\x27\x1c\x00\x04 archive", "7z archive"),
    (bz2.compress(b"just words"), "not XML"),
    (b"BZh91AY&SY garbage that is not bzip2", "cannot be decompressed"),
])
def test_not_an_export(tmp_path, content, message):
    path = tmp_path / "wiki.xml"
    path.write_bytes(content)
    with pytest.raises(DumpError, match=re.escape(str(path)) + ".*" + message):
        list(dump.iter_pages(path))


def test_truncated_xml_says_where_it_stopped(tmp_path):
    xml = STARTREK.read_bytes()
    path = tmp_path / "half.xml"
    path.write_bytes(xml[: xml.index(b"This part waits for an editor who knows the youth of Sarek")])
    pages = []
    with pytest.raises(DumpError) as caught:
        for p in dump.iter_pages(path):
            pages.append(p.title)
    message = str(caught.value)
    assert str(path) in message and "truncated" in message
    assert re.search(r"line \d+", message)
    assert "after 19 complete pages" in message and "'Spock'" in message
    assert pages[-1] == "Spock"


def test_truncated_bz2(tmp_path):
    data = ENWIKI.read_bytes()
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DumpError, match=re.escape(str(path)) + ".*truncated.*after \\d+ complete pages"):
        for _ in dump.iter_pages(path):
            pass


def test_broken_xml_in_the_middle(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text(export([page("A", (1, "2020-01-01T00:00:00Z", "a")), "<page><title>B</title></oops>"]))
    with pytest.raises(DumpError, match=re.escape(str(path)) + ".*broken XML at line .*mismatched tag.*'A'"):
        list(dump.iter_pages(path))


def test_a_stub_dump_without_text_is_refused(tmp_path):
    path = tmp_path / "stub.xml"
    path.write_text(export([
        '<page><title>A</title><ns>0</ns><id>1</id><revision><id>2</id><timestamp>2020-01-01T00:00:00Z'
        '</timestamp><contributor><ip>1.2.3.4</ip></contributor><model>wikitext</model>'
        '<format>text/x-wiki</format><text bytes="120" id="77" /><sha1>x</sha1></revision></page>\n']))
    with pytest.raises(DumpError, match=re.escape(str(path)) + ".*'A'.*stub dump"):
        list(dump.iter_pages(path))
    path.write_text(export([page("B", (1, "2020-01-01T00:00:00Z", ""))]))  # an empty page is fine
    assert [p.text for p in dump.iter_pages(path)] == [""]


# --- memory stays flat ---

def peak_bytes(path, **kwargs):
    tracemalloc.start()
    try:
        for _ in dump.iter_pages(path, **kwargs):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_enwiki_sample_streams_in_a_fraction_of_its_size():
    xml_size = len(bz2.decompress(ENWIKI.read_bytes()))
    assert xml_size > 6_000_000
    # The largest page (about 180,000 characters) sets the floor; the file's size must not matter.
    assert peak_bytes(ENWIKI) < xml_size / 3


def test_memory_does_not_grow_with_the_number_of_pages_or_revisions(tmp_path):
    text = "Words of an island page. " * 80
    small, large = tmp_path / "small.xml", tmp_path / "large.xml"
    small.write_text(export([page(f"P{i}", (i, "2020-01-01T00:00:00Z", text), page_id=i) for i in range(1, 251)]))
    large.write_text(export([page(f"P{i}", (i, "2020-01-01T00:00:00Z", text), page_id=i) for i in range(1, 2001)]))
    history = tmp_path / "history.xml"
    history.write_text(export([page("P", *[(i, "2020-01-01T00:00:00Z", text) for i in range(1, 2001)])]))
    assert large.stat().st_size > 7 * small.stat().st_size
    assert peak_bytes(large) < 1.5 * peak_bytes(small) + 100_000
    assert peak_bytes(history) < 1.5 * peak_bytes(small) + 100_000
    assert list(dump.iter_pages(history))[0].revision_id == 2000
