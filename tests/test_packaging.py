"""Packaging: the optional-import hints (fast), and the built wheel installed alone in a fresh venv.

A missing package is simulated the way Python itself signals one: ``sys.modules[name] = None``
makes ``import name`` raise ``ModuleNotFoundError``.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from torch import nn

from unlearnkit.errors import MissingExtraError, UnlearnkitError
from unlearnkit.extras import EXTRAS, hint, optional, require

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "unlearnkit"

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _mask(monkeypatch, module: str) -> None:
    """Make ``module`` look not installed: it and its already-imported submodules map to None."""
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")] + [module]:
        monkeypatch.setitem(sys.modules, name, None)


def _hint(feature: str, extra: str) -> str:
    return f'{feature} the [{extra}] extra: pip install "unlearnkit[{extra}]"'


# --- the helper ---------------------------------------------------------------------------------

@pytest.mark.parametrize("module,extra", sorted(EXTRAS.items()))
def test_require_names_the_extra(monkeypatch, module, extra):
    _mask(monkeypatch, module)
    with pytest.raises(MissingExtraError) as info:
        require(module, extra, "this feature needs")
    assert str(info.value) == _hint("this feature needs", extra) == hint(extra, "this feature needs")
    assert isinstance(info.value, UnlearnkitError) and isinstance(info.value, ImportError)
    assert optional(module) is None


def test_require_returns_the_module():
    assert require("json", "llm", "x needs") is json
    assert optional("json") is json


def test_require_submodule_of_a_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    monkeypatch.delitem(sys.modules, "rouge_score.rouge_scorer", raising=False)  # not imported yet
    with pytest.raises(MissingExtraError, match=r'^x needs the \[llm\] extra: pip install "unlearnkit\[llm\]"$'):
        require("rouge_score.rouge_scorer", "llm", "x needs")


def test_require_says_why_an_installed_package_fails(tmp_path, monkeypatch):
    """A broken install (one of the package's own dependencies missing) keeps the hint and adds the reason."""
    (tmp_path / "uk_broken_pkg").mkdir()
    (tmp_path / "uk_broken_pkg" / "__init__.py").write_text("import uk_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtraError) as info:
        require("uk_broken_pkg", "llm", "x needs")
    message = str(info.value)
    assert message.startswith(_hint("x needs", "llm") + " (importing uk_broken_pkg failed: ")
    assert "uk_missing_dependency" in message and "\n" not in message


# --- every optional import point --------------------------------------------------------------

def _hf_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    return tmp_path


def _call_sites(tmp_path):
    """(masked module, call, expected message) for each optional import in src/."""
    from unlearnkit.audits import tofu as tofu_audit
    from unlearnkit.bench import runner, tune
    from unlearnkit.data import hf_images, tofu, tokenizer, wmdp
    from unlearnkit.models import hf
    from unlearnkit.report import render_report

    def rouge():
        tofu_audit._SCORER = None
        return tofu_audit.rouge_l_recall(["a"], ["a"])

    def study():
        sys.modules.pop("unlearnkit.bench.study", None)
        import unlearnkit.bench.study  # noqa: F401

    saved = tmp_path / "saved"
    llm, lm, text = "llm", "language models need", "text data needs"
    return [
        ("transformers", lambda: hf.load_hf_model(_hf_folder(tmp_path)), _hint(lm, llm)),
        ("transformers", lambda: hf.tiny_llama(None), _hint(lm, llm)),
        ("transformers", lambda: hf.load_hf_tokenizer(tmp_path), _hint(lm, llm)),
        ("transformers", lambda: hf.save_hf_model(nn.Linear(1, 1), None, tmp_path / "new"), _hint(lm, llm)),
        ("peft", lambda: hf.add_lora(nn.Linear(1, 1)), _hint("LoRA needs", llm)),
        ("tokenizers", lambda: tokenizer.texts_digest(["a"]), _hint(text, llm)),
        ("tokenizers", lambda: tokenizer.train_tokenizer(["a"]), _hint(text, llm)),
        ("transformers", lambda: tokenizer.train_tokenizer(["a"]), _hint(text, llm)),
        ("transformers", lambda: tokenizer.load_tokenizer(tmp_path), _hint(text, llm)),
        ("rouge_score", rouge, _hint("the TOFU ROUGE audit needs", llm)),
        ("optuna", tune._quiet_optuna, _hint("unlearnkit tune needs", "tune")),
        ("optuna", study, _hint("unlearnkit tune needs", "tune")),
        ("matplotlib", lambda: render_report(None), _hint("unlearnkit report (its figures) needs", "report")),
        ("datasets", lambda: hf_images._load(saved),
         _hint("reading a Hugging Face dataset folder needs", "hf")),
        ("datasets", lambda: tofu._load_saved_dataset(saved),
         _hint(f"{saved} is a Hugging Face dataset folder (or give the split as .json / .jsonl); reading it needs",
               "hf")),
        ("pandas", lambda: wmdp.read_parquet([saved / "test.parquet"]),
         _hint(f"{saved / 'test.parquet'} is a parquet file (or give the questions as "
               "wmdp-mcqs/<topic>_questions.json); reading it needs", "hf")),
        ("submitit", lambda: runner._submitit_jobs(None, None, [], None),
         _hint("--executor slurm / submitit-local needs", "slurm")),
    ]


@pytest.mark.parametrize("index", range(17))
def test_each_optional_import_point_names_its_extra(tmp_path, monkeypatch, index):
    from unlearnkit.audits import tofu as tofu_audit

    monkeypatch.setattr(tofu_audit, "_SCORER", tofu_audit._SCORER)  # restored after the ROUGE case
    monkeypatch.delitem(sys.modules, "unlearnkit.bench.study", raising=False)  # restored afterwards
    sites = _call_sites(tmp_path)
    assert len(sites) == 17
    module, call, expected = sites[index]
    _mask(monkeypatch, module)
    with pytest.raises(MissingExtraError) as info:
        call()
    assert str(info.value) == expected


def test_accelerate_is_optional(monkeypatch):
    """distributed.init falls back to torch.distributed without Accelerate (no error, no hint)."""
    from unlearnkit import distributed

    _mask(monkeypatch, "accelerate")
    assert distributed.optional("accelerate") is None


def _imports(tree: ast.Module):
    """(top-level module name, at module level?) for every import statement."""
    out = []

    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                out.extend((alias.name.split(".")[0], top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                out.append((child.module.split(".")[0], top))
            visit(child, top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, True)
    return out


def _required(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Top-level names passed to require()/optional(): (anywhere, at module level)."""
    anywhere, module_level = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("require", "optional"):
            anywhere.add(str(node.args[0].value).split(".")[0])
    for statement in tree.body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" and node.args:
                module_level.add(str(node.args[0].value).split(".")[0])
    return anywhere, module_level


def test_optional_packages_are_only_imported_through_the_helper():
    """No module-level import of an optional package (``import unlearnkit`` and the image path stay
    core-only), and every file that imports one inside a function goes through require()/optional()."""
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        anywhere, module_level = _required(tree)
        for name, top in _imports(tree):
            if name not in EXTRAS:
                continue
            if top and name not in module_level:
                problems.append(f"{path.relative_to(ROOT)}: module-level import of {name}")
            elif name not in anywhere:
                problems.append(f"{path.relative_to(ROOT)}: imports {name} without require()/optional()")
    assert not problems, "\n".join(problems)


def test_extras_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = lambda reqs: {r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()  # noqa: E731
                          for r in reqs}
    distributions = {"rouge_score": "rouge-score", "pandas": "datasets", "pyarrow": "datasets"}
    for module, extra in EXTRAS.items():
        assert distributions.get(module, module) in names(extras[extra]), (module, extra)
    core = names(project["dependencies"])
    assert not core & {d for e in EXTRAS.values() for d in names(extras[e])}, "an optional package is a core dependency"
    assert core == {"torch", "numpy", "scikit-learn", "scipy", "safetensors", "pillow", "tqdm", "tomli"}
    others = sorted(set(extras) - {"all", "test"})
    assert extras["all"] == [f"unlearnkit[{','.join(['llm', 'tune', 'report', 'hf', 'dist', 'slurm', 'docs'])}]"]
    assert set(extras["all"][0][len("unlearnkit["):-1].split(",")) == set(others)
    assert extras["all"][0] in extras["test"]


def test_core_only_imports_and_methods(tmp_path):
    """Every module but the Optuna plumbing imports, and ``unlearnkit methods`` runs, with every extra
    missing (pandas/pyarrow stay: scikit-learn probes sys.modules for pandas)."""
    masked = sorted(set(EXTRAS) - {"pandas", "pyarrow"})
    code = (f"import sys\nfor m in {masked!r}: sys.modules[m] = None\n"
            "import importlib, pkgutil, unlearnkit\n"
            "for info in pkgutil.walk_packages(unlearnkit.__path__, 'unlearnkit.'):\n"
            "    if info.name.rpartition('.')[2] != '__main__' and info.name != 'unlearnkit.bench.study':\n"
            "        importlib.import_module(info.name)\n"
            "from unlearnkit.cli import main\nsys.exit(main(['methods']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ga " in done.stdout


def test_text_bench_without_llm_extra_fails_first_with_the_hint(tmp_path, monkeypatch, capsys):
    from unlearnkit.cli import main

    _mask(monkeypatch, "transformers")
    out = tmp_path / "out"
    start = time.perf_counter()
    assert main(["bench", "--data", "tofu-mini", "--quick", "--out", str(out)]) == 2
    assert time.perf_counter() - start < 30  # before any training
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("unlearnkit: error: ") and err.rstrip().endswith(_hint("", "llm").strip()), err
    assert not (out / "results.jsonl").exists()


# --- the wheel, alone in a fresh venv ------------------------------------------------------------

def _run(args, *, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def _tail(done: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-n:]}\n--- stderr\n{done.stderr[-n:]}"


def _source_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")}


def test_wheel_installs_alone_and_runs(tmp_path):
    """Build the sdist and the wheel from a snapshot of the tree, check what they hold, install the
    wheel with no extras into a fresh venv (torch 2.13.0 first), run the digits bench from it, and
    check that text data stops at once with the [llm] hint."""
    pytest.importorskip("build", reason="the `build` package (the [test] extra) builds the sdist and wheel")
    # a snapshot of what the build reads, so the working tree is never written to
    tree = tmp_path / "tree"
    shutil.copytree(SRC, tree / "src" / "unlearnkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    dist = tmp_path / "dist"
    built = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, tree], timeout=300)
    if built.returncode != 0 and "Missing dependencies" in built.stdout + built.stderr:
        # this environment's setuptools is older than the build-system needs: build in isolation
        built = _run([sys.executable, "-m", "build", "--outdir", dist, tree], timeout=600)
    assert built.returncode == 0, _tail(built)
    (wheel,), (sdist,) = dist.glob("unlearnkit-*.whl"), dist.glob("unlearnkit-*.tar.gz")

    expected = _source_files(tree / "src" / "unlearnkit")
    assert "py.typed" in expected and "cli.py" in expected
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(info).decode()
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    in_wheel = {n[len("unlearnkit/"):] for n in names if n.startswith("unlearnkit/")}
    assert expected - in_wheel == set(), f"missing from the wheel: {sorted(expected - in_wheel)}"
    assert in_wheel - expected == set(), f"unexpected in the wheel: {sorted(in_wheel - expected)}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata
    assert "unlearnkit = unlearnkit.cli:main" in entry_points
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any(pkg in line for line in core for pkg in ("transformers", "optuna", "matplotlib", "datasets")), core
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        in_sdist = {n[len(f"{top}/src/unlearnkit/"):] for n in tf.getnames() if n.startswith(f"{top}/src/unlearnkit/")}
        assert {f"{top}/LICENSE", f"{top}/pyproject.toml", f"{top}/README.md"} <= set(tf.getnames())
    assert expected - in_sdist == set(), f"missing from the sdist: {sorted(expected - in_sdist)}"

    # a fresh venv, no system site packages: torch first (a bare `torch` would pull CUDA), then the wheel
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", venv], timeout=300)
    assert made.returncode == 0, _tail(made)
    python, cli = venv / "bin" / "python", venv / "bin" / "unlearnkit"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(OMP_NUM_THREADS="1", CI="1", PIP_DISABLE_PIP_VERSION_CHECK="1", UNLEARNKIT_CACHE=str(tmp_path / "cache"),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    def pip_install(*args):
        done = _run([python, "-m", "pip", "install", "--quiet", *args], env=env)
        if done.returncode != 0:
            probe = _run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp_path / "probe",
                          "tqdm"], env=env, timeout=300)
            if probe.returncode != 0:
                pytest.skip(f"the fresh venv cannot reach a package index for the core dependencies "
                            f"(pip install {' '.join(map(str, args))} failed; probe: {probe.stderr.strip()[-300:]})")
        assert done.returncode == 0, _tail(done)

    pip_install("torch==2.13.0")
    pip_install(wheel)
    probe = ("import importlib.util as u, json, unlearnkit; from unlearnkit.methods.base import METHODS; "
             f"print(json.dumps([unlearnkit.__file__, METHODS.names(), [m for m in {sorted(EXTRAS)!r} if u.find_spec(m)]]))")
    where = _run([python, "-c", probe], env=env, cwd=tmp_path)
    assert where.returncode == 0, _tail(where)
    location, methods, extras_present = json.loads(where.stdout)
    assert Path(location).resolve().is_relative_to(venv.resolve()), location
    assert extras_present == [], f"the core install pulled optional packages: {extras_present}"
    source = _run([sys.executable, "-c", probe], env={**env, "PYTHONPATH": str(tree / "src")}, cwd=tmp_path)
    assert source.returncode == 0, _tail(source)
    assert methods == json.loads(source.stdout)[1]  # every method the source registers, registered from the wheel

    out = tmp_path / "bench"
    bench = _run([cli, "bench", "--quick", "--out", out], env=env, cwd=tmp_path)
    assert bench.returncode == 0, _tail(bench)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ok = {r["method"] for r in records if r["status"] == "ok"}
    assert set(methods) <= ok, f"methods without an ok row: {sorted(set(methods) - ok)}; {_tail(bench)}"

    forget = _run([cli, "forget", "--forget", "class:0", "--method", "ga", "--out", tmp_path / "forget"],
                  env=env, cwd=tmp_path)
    assert forget.returncode == 0, _tail(forget)
    assert (tmp_path / "forget" / "record.html").stat().st_size > 0  # no matplotlib needed

    text = _run([cli, "bench", "--data", "tofu-mini", "--quick", "--out", tmp_path / "text"], env=env, cwd=tmp_path,
                timeout=120)
    assert text.returncode == 2, _tail(text)
    assert 'pip install "unlearnkit[llm]"' in text.stderr and "Traceback" not in text.stderr, _tail(text)
    assert text.stderr.startswith("unlearnkit: error: ") and text.stderr.count("\n") == 1, _tail(text)
    assert not (tmp_path / "text" / "results.jsonl").exists()
