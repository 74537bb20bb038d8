"""The tree's one rule: stages in the order data flows, each importing only the shared modules and earlier stages,
no import circles, and Luigi only in tasks/ (and config.py, the one reader of luigi.cfg)."""
import ast
from pathlib import Path

import wikiluigi

PACKAGE = Path(wikiluigi.__file__).resolve().parent
STAGES = {"sources": 1, "convert": 2, "corpus": 3, "training": 4, "tasks": 5, "cli": 5}
LUIGI_ALLOWED = {"wikiluigi", "wikiluigi.config", "wikiluigi.cli"}


def _module_name(path: Path) -> str:
    return ".".join(("wikiluigi",) + path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    """Every module -> the wikiluigi modules (and 'luigi') it imports, lazily inside functions too."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    is_module = (PACKAGE.parent / (submodule.replace(".", "/") + ".py")).is_file()
                    found.add(submodule if is_module else node.module)
        graph[_module_name(path)] = {name for name in found if name.split(".")[0] in ("wikiluigi", "luigi")}
    return graph


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.get(parts[1], 0) if len(parts) > 1 else 0


def test_no_stage_imports_a_later_one():
    later = [f"{module} -> {imported}" for module, imported_names in _imports().items() if module != "wikiluigi"
             for imported in imported_names if imported.startswith("wikiluigi") and _stage(imported) > _stage(module)]
    assert later == []


def test_luigi_is_imported_only_by_the_tasks_and_config():
    users = sorted(module for module, imported in _imports().items()
                   if any(name.split(".")[0] == "luigi" for name in imported)
                   and not module.startswith("wikiluigi.tasks") and module not in LUIGI_ALLOWED)
    assert users == []


def test_no_import_circles():
    imports = _imports()
    imports.pop("wikiluigi")                     # the package's __init__ registers the tasks: the top of the tree
    graph = {module: imported & set(imports) for module, imported in imports.items()}
    circles, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        for imported in graph.get(module, ()):
            if state.get(imported) == "open":
                circles.append(" -> ".join(stack[stack.index(imported):] + [imported]))
            elif imported not in state:
                visit(imported, stack + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []

