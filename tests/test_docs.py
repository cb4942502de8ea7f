"""The documentation: the MkDocs site builds with ``--strict``, the README stays short, the measured
tables in docs/results.md are exactly what docs/gen_results.py writes from the committed results
files, the pretrained-model recipe table in docs/configuration.md is what docs/gen_recipes.py writes
from ``unlearnkit.resolve``, and every registered method is documented."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnkit import METHODS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _generator(name: str):
    """docs/gen_NAME.py as a module (the generators are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"gen_{name}", DOCS / f"gen_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gen_results():
    return _generator("results")


def _gen_recipes():
    return _generator("recipes")


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python",
                        reason="mkdocstrings[python] is not installed (pip install -e '.[docs]')")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8").count('id="unlearnkit.unlearn"') == 1


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; keep it at most 200 (the rest goes in docs/)"


def test_readme_keeps_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "pip install torch==2.13.0 && pip install -e . && unlearnkit bench" in text
    assert 'pip install -e ".[test]" && OMP_NUM_THREADS=1 python -m pytest -q' in text


def test_generated_tables_are_up_to_date():
    gen = _gen_results()
    stale = gen.check()
    assert not stale, (f"docs/results.md: generated blocks {stale} differ from the committed results files; "
                       "run `python docs/gen_results.py` (do not edit the tables by hand)")


def test_generated_blocks_come_from_files():
    gen = _gen_results()
    text = (DOCS / "results.md").read_text(encoding="utf-8")
    for name in gen.BLOCKS:
        assert f"<!-- generated: {name} -->" in text
        assert (DOCS / "results" / f"{name}.jsonl").is_file()


def test_hand_edited_table_is_caught(tmp_path, monkeypatch):
    gen = _gen_results()
    page = tmp_path / "results.md"
    text = (DOCS / "results.md").read_text(encoding="utf-8")
    edited = re.sub(r"(\| class:0 \| `ga` \| )([0-9.]+)", lambda m: m.group(1) + "12.34", text, count=1)
    assert edited != text
    page.write_text(edited, encoding="utf-8")
    monkeypatch.setattr(gen, "PAGE", page)
    assert gen.check() == ["digits"]


def _gen_claims():
    return _generator("claims")


def _assert_hand_edit_caught(gen, text: str, edited: str, page, monkeypatch) -> None:
    """A generator whose page was hand-edited (``edited`` from ``text``) fails its check and
    ``--check``, and rewriting restores exactly ``text`` (the prose untouched)."""
    assert edited != text
    page.write_text(edited, encoding="utf-8")
    monkeypatch.setattr(gen, "PAGE", page)
    assert not gen.check()
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.check()
    assert page.read_text(encoding="utf-8") == text


def test_claim_table_is_up_to_date():
    gen = _gen_claims()
    assert gen.check(), ("docs/results.md: the paper-claim table differs from benchmarks/results/claim-*.json; "
                         "run `python docs/gen_claims.py` (do not edit the table by hand)")


def test_claim_table_hand_edit_is_caught(tmp_path, monkeypatch):
    gen = _gen_claims()
    text = (DOCS / "results.md").read_text(encoding="utf-8")
    block = text[text.index(gen.BEGIN):text.index(gen.END, text.index(gen.BEGIN))]
    verdict = re.search(r"\*\*(reproduces|partly|not reproduced)\*\*", block).group(0)
    edited = text.replace(block, block.replace(verdict, "**reproduces (edited)**", 1))
    _assert_hand_edit_caught(gen, text, edited, tmp_path / "results.md", monkeypatch)


def _table_names(text: str) -> set[str]:
    """The first-column names of every markdown table row: | `name` | ..."""
    return set(re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|", text, flags=re.M))


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_is_documented(name):
    assert name in _table_names(README.read_text(encoding="utf-8")), f"{name} is missing from the README's methods table"
    methods_page = (DOCS / "methods.md").read_text(encoding="utf-8")
    assert name in _table_names(methods_page), f"{name} is missing from the table in docs/methods.md"
    assert re.search(rf"^### `{re.escape(name)}`", methods_page, flags=re.M), f"docs/methods.md has no section for {name}"


def _recipe_block(text: str) -> str:
    start = text.index("<!-- generated: recipes -->")
    return text[start:text.index("<!-- end generated -->", start)]


def test_recipe_table_is_up_to_date():
    gen = _gen_recipes()
    assert gen.check(), ("docs/configuration.md: the pretrained-model recipe table differs from unlearnkit.resolve; "
                         "run `python docs/gen_recipes.py` (do not edit the table by hand)")


def test_recipe_table_has_every_method_and_every_value():
    from unlearnkit.resolve import PRETRAINED_FINETUNE, PRETRAINED_METHODS, PRETRAINED_TEXT

    gen = _gen_recipes()
    block = _recipe_block((DOCS / "configuration.md").read_text(encoding="utf-8"))
    assert set(_table_names(block)) >= set(METHODS.names()) | set(PRETRAINED_TEXT)
    for method, values in PRETRAINED_METHODS.items():
        row = next(line for line in block.splitlines() if line.startswith(f"| `{method}` |"))
        assert all(f"`{key}={value}`" in row for key, value in values.items()), row
    cited = gen.citations()  # every value of the scale layer says where it comes from
    assert all(cited.get(key) for key in PRETRAINED_TEXT)
    assert all(cited.get(f"{m}.{k}") for m, values in PRETRAINED_METHODS.items() for k in values)
    assert "finetune.yaml" in cited["train"] and PRETRAINED_FINETUNE["lr"] == PRETRAINED_TEXT["lr"]


def test_recipe_table_hand_edit_is_caught(tmp_path, monkeypatch):
    gen = _gen_recipes()
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    edited = text.replace("| `lr` | `1e-05` |", "| `lr` | `1e-04` |", 1)
    _assert_hand_edit_caught(gen, text, edited, tmp_path / "configuration.md", monkeypatch)


def test_recipe_citations_follow_resolve_comments(tmp_path, monkeypatch):
    """A value whose comment is removed from resolve.py is an error naming it, not a blank cell."""
    from unlearnkit import resolve

    gen = _gen_recipes()
    source = Path(resolve.__file__).read_text(encoding="utf-8")
    line = next(row for row in source.splitlines() if row.lstrip().startswith('"lr": 1e-5,'))
    fake = tmp_path / "resolve.py"
    fake.write_text(source.replace(line, line.split("#")[0].rstrip()), encoding="utf-8")
    monkeypatch.setattr(resolve, "__file__", str(fake))
    with pytest.raises(SystemExit, match="lr"):
        gen.citations()
