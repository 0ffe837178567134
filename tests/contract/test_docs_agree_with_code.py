"""The docs name things the code has: every file path, relative link, `make` target, topic and environment
variable a document names exists. A claim about a thing that is gone (or was renamed) fails here, so the docs
and the code cannot drift apart silently. Superseded decision records keep their history and are skipped.
"""

import os
import re
from pathlib import Path

import pytest

from shared.contracts.topics import all_topics
from shared.testing import ROOT

DOCS = sorted(p for p in [ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").rglob("*.md"),
                          *ROOT.glob("services/*/README.md"), *(ROOT / "contracts").rglob("*.md")]
              if p.exists() and "**Superseded" not in p.read_text(encoding="utf-8")[:400])


def _tree() -> list[str]:
    """Every file below the root, dot-folders (.venv, .run with the live database, .cache) pruned before
    they are entered; symlinks are not followed."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        found += [(Path(folder) / f).relative_to(ROOT).as_posix() for f in files if not f.startswith(".")]
    return found


TRACKED = _tree()
PATH = re.compile(r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+\.(?:py|md|yaml|yml|json|sh|toml|sql|xsd|ini|tpl))`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MAKE = re.compile(r"`make ([a-z][a-z0-9-]*)")
ENV = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`")
TOPIC = re.compile(r"`((?:settlement|eligibility|assistance|case|payment|transfer|registry|policy)\.[a-z.]+)`")


def _doc_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _exists(name: str, doc: Path) -> bool:
    """A path relative to the root, to the document, or the tail of some file's path (`domain/rules.py`)."""
    return (ROOT / name).exists() or (doc.parent / name).exists() or any(t.endswith("/" + name) for t in TRACKED)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_file_and_link_a_document_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    named = {m for m in PATH.findall(text)} | {m for m in LINK.findall(text) if "://" not in m}
    assert not sorted(n for n in named if not _exists(n, doc)), "named in the document but not in the tree"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_make_target_and_topic_a_document_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    assert not sorted(set(MAKE.findall(text)) - targets), "make targets the Makefile does not have"
    topics = set(all_topics())
    assert not sorted(t for t in set(TOPIC.findall(text)) if t.rstrip(".") not in topics), "topics the contracts lack"


def test_every_environment_variable_a_document_names_is_read_somewhere() -> None:
    """A setting's variable is its field's name in upper case (pydantic-settings); scripts read theirs as is."""
    code = "\n".join((ROOT / t).read_text(encoding="utf-8", errors="ignore") for t in TRACKED
                     if t.endswith((".py", ".sh", ".yaml", ".yml", ".toml", ".tpl")) or t.endswith("Makefile"))
    unread = sorted({(v, _doc_id(doc)) for doc in DOCS for v in ENV.findall(doc.read_text(encoding="utf-8"))
                     if v not in code and v.lower() not in code})
    assert not unread, "variables the docs name that no setting, script or chart reads"
