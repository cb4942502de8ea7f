"""Write the pretrained-model recipe table of ``docs/configuration.md`` from ``unlearnkit.resolve``.

    python docs/gen_recipes.py            # rewrite the generated block in docs/configuration.md
    python docs/gen_recipes.py --check    # exit 1 if the block differs from what would be written

The block between ``<!-- generated: recipes -->`` and ``<!-- end generated -->`` is owned by this
script (hand edits there are overwritten, and ``tests/test_docs.py`` fails on them); the rest of the
page is prose and is left alone.

What is written, all of it read from the library, nothing typed here:

- the values of the resolver's ``scale`` layer for a user's pretrained language model
  (``resolve_config(METHOD, kind="text", scale="pretrained")``; the layers are
  :func:`unlearnkit.resolve.config_layers`, and :func:`~unlearnkit.resolve.explain_config` confirms
  that each value shown is the one the run gets), for every registered method;
- where each value comes from: the comment ``src/unlearnkit/resolve.py`` writes beside it in
  ``PRETRAINED_TEXT``, ``PRETRAINED_METHODS`` and above ``PRETRAINED_FINETUNE`` (read from the source
  with :mod:`ast` and :mod:`tokenize`). A comment ending in ``...`` continues in the next entry's
  comment starting with ``...``: both entries get the joined text. A comment on lines of its own
  applies to the entries below it up to the next commented one. If ``resolve`` one day declares a
  ``SOURCES`` dict (``"KEY"``, ``"METHOD.KEY"``, ``"train"`` → citation), its entries win over the
  comments. A value without a citation is an error naming it.
"""
from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs/: the generators' shared module
from generated_blocks import is_current, replace_block, run  # noqa: E402

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "configuration.md"
NAME = "recipes"


# --- citations: the comments of resolve.py ---------------------------------------------------------

def _comments(source: str) -> dict[int, str]:
    """line number -> the text of the comment on that line (without ``#``)."""
    out = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            out[token.start[0]] = token.string.lstrip("#").strip()
    return out


def _block_above(lines: list[str], comments: dict[int, str], line: int) -> str | None:
    """The comment lines directly above ``line`` (lines holding nothing but a comment), joined."""
    found = []
    row = line - 1
    while row >= 1 and lines[row - 1].strip().startswith("#"):
        found.append(comments[row])
        row -= 1
    return " ".join(reversed(found)) or None


def _assignment(tree: ast.Module, name: str) -> ast.stmt:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return node
    raise SystemExit(f"gen_recipes: resolve.py has no assignment to {name}")


def _entry_citations(node: ast.Dict, lines: list[str], comments: dict[int, str]) -> dict[str, str | None]:
    """key -> citation of each entry of a dict literal (module docstring's rules)."""
    out: dict[str, str | None] = {}
    block = None  # a comment on lines of its own: applies to the entries below it
    for key, value in zip(node.keys, node.values):
        above = _block_above(lines, comments, key.lineno)
        if above is not None:
            block = above
        trailing = next((comments[row] for row in range(key.lineno, value.end_lineno + 1) if row in comments
                         and not lines[row - 1].strip().startswith("#")), None)
        out[ast.literal_eval(key)] = trailing if trailing is not None else block
    keys = list(out)
    for first, second in zip(keys, keys[1:]):  # "… per_device_train_batch_size 8 ..." + "... × accumulation 4"
        a, b = out[first], out[second]
        if a and b and a.endswith("...") and b.startswith("..."):
            out[first] = out[second] = a[:-3].rstrip() + " " + b[3:].lstrip()
    return out


def citations() -> dict[str, str]:
    """``"KEY"`` (PRETRAINED_TEXT), ``"METHOD.KEY"`` (PRETRAINED_METHODS), ``"METHODS"`` (the note above
    PRETRAINED_METHODS) and ``"train"`` (PRETRAINED_FINETUNE) -> where the value comes from."""
    from unlearnkit import resolve

    source = Path(resolve.__file__).read_text(encoding="utf-8")
    tree, lines, comments = ast.parse(source), source.splitlines(), _comments(source)
    out: dict[str, str | None] = {}
    out.update(_entry_citations(_assignment(tree, "PRETRAINED_TEXT").value, lines, comments))
    methods = _assignment(tree, "PRETRAINED_METHODS")
    note = _block_above(lines, comments, methods.lineno)  # "... and each method's own values there (…)"
    out["METHODS"] = re.sub(r"^\.\.\.\s*(and\s+)?", "", note) if note else note
    for method, cited in _entry_citations(methods.value, lines, comments).items():
        for key in resolve.PRETRAINED_METHODS[method]:
            out[f"{method}.{key}"] = cited
    out["train"] = _block_above(lines, comments, _assignment(tree, "PRETRAINED_FINETUNE").lineno)
    out.update(getattr(resolve, "SOURCES", None) or {})
    wanted = [*resolve.PRETRAINED_TEXT, "train",
              *(f"{m}.{k}" for m, values in resolve.PRETRAINED_METHODS.items() for k in values)]
    missing = [key for key in wanted if not out.get(key)]
    if missing:
        raise SystemExit(f"gen_recipes: no citation in src/unlearnkit/resolve.py for {', '.join(missing)}; "
                         "write where the value comes from in a comment beside it")
    return {k: v for k, v in out.items() if v}


# --- the table ---------------------------------------------------------------------------------------

def _value(value) -> str:
    return f"`{value}`"


def _pairs(values: dict) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in values.items())


def _accumulated(values: dict) -> str:
    batch, accum = values["batch_size"], values.get("grad_accum", 1)
    return f"{batch} × {accum} = {batch * accum} (shared loop: accumulated)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def method_rows() -> list[list[str]]:
    """One row per registered method: name, what the ``scale`` layer sets, one optimizer step, source."""
    from unlearnkit import METHODS
    from unlearnkit.resolve import PRETRAINED_TEXT, REFERENCE, accumulates, config_layers, explain_config, recipe_layers

    cited = citations()
    rows = []
    for method in METHODS.names():
        layers = config_layers(method, kind="text", scale="pretrained")
        origin = explain_config(method, kind="text", scale="pretrained")
        if method == REFERENCE:
            recipe = next(layer for layer in recipe_layers(kind="text", scale="pretrained") if layer.name == "scale")
            values = recipe.values
            differ = {k: v for k, v in values.items() if PRETRAINED_TEXT.get(k) != v}
            assert all(origin[k] == "recipe" for k in values), (method, origin)
            rows.append([f"`{method}`",
                         f"through its `recipe` layer, the finetuning recipe (`PRETRAINED_FINETUNE`): the shared "
                         f"recipe with {_pairs(differ)}",
                         _accumulated(values),
                         cited["train"]])
            continue
        scale = next((layer for layer in layers if layer.name == "scale"), None)
        if scale is None:
            rows.append([f"`{method}`", "nothing: no `scale` layer (the model as given)", "–", "–"])
            continue
        values = scale.values
        assert all(origin[k] == "scale" for k in values), (method, origin)
        shared = {k: v for k, v in values.items() if k in PRETRAINED_TEXT}
        own = {k: v for k, v in values.items() if k not in PRETRAINED_TEXT}
        changed = {k: v for k, v in shared.items() if PRETRAINED_TEXT[k] != v}
        left_out = [k for k in PRETRAINED_TEXT if k not in shared]
        text = "the shared recipe"
        if changed:
            text += f" with {_pairs(changed)}"
        if left_out:
            text += f", without {', '.join(f'`{k}`' for k in left_out)}"
        if own:
            text += f"; its own {_pairs(own)}"
        if accumulates(method):
            step = _accumulated(values)
        else:
            step = f"{values['batch_size']} (its own loop: `grad_accum` folded into `batch_size`)"
        sources = {cited[f"{method}.{k}"] for k in own}
        source = "`PRETRAINED_TEXT` (above)" + "".join(f"; {s}" for s in sorted(sources))
        rows.append([f"`{method}`", text, step, source])
    return rows


def shared_rows() -> list[list[str]]:
    from unlearnkit.resolve import PRETRAINED_TEXT

    cited = citations()
    return [[f"`{key}`", _value(value), cited[key]] for key, value in PRETRAINED_TEXT.items()]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def block() -> str:
    """Everything between the markers."""
    from unlearnkit.resolve import config_layers

    source = next(layer.source for layer in config_layers("ga", kind="text", scale="pretrained")
                  if layer.name == "scale")
    lines = [
        "",
        f"The shared recipe, `unlearnkit.resolve.PRETRAINED_TEXT` (the `scale` layer's source: \"{source}\"). "
        "Each value's origin is the comment beside it in `src/unlearnkit/resolve.py`; OpenUnlearning's paths are "
        "relative to its repository (locuslab/open-unlearning):",
        "",
        *_table(["field", "value", "from"], shared_rows()),
        "",
        f"Per method, what `resolve_config(METHOD, kind=\"text\", scale=\"pretrained\")` takes from that layer "
        f"(`explain_config` names `scale` for each of these values). `PRETRAINED_METHODS` holds "
        f"{citations()['METHODS']}.",
        "",
        *_table(["method", "values the scale layer sets", "effective batch", "from"], method_rows()),
        "",
    ]
    return "\n".join(lines)


def render(text: str) -> str:
    """``text`` (the page) with the generated block rewritten."""
    return replace_block(text, NAME, block(), PAGE)


def check() -> bool:
    """Whether docs/configuration.md's block is what would be written now."""
    return is_current(PAGE, render)


def main(argv: list[str] | None = None) -> int:
    return run(argv, __doc__, PAGE, render, "gen_recipes.py")


if __name__ == "__main__":
    sys.exit(main())
