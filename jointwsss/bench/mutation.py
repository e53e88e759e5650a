"""Mutation testing of the paper's path: does a one-line bug in the code from the settings and a batch to the
losses and the numbers make a test fail?

The mutants are mutmut's (2.x, the ``test`` extra): its operators (``+`` -> ``-``, ``<`` -> ``<=``, ``True`` ->
``False``, ``n`` -> ``n + 1``, ``x = y`` -> ``x = None``, a string -> ``"XX..XX"``, a decorator removed, ...) applied
one at a time. mutmut's own runner mutates the checkout in place and runs one test command for the whole project;
this driver keeps mutmut's operators and adds what per-module runs need:

- a snapshot of the tree (``git archive`` of a commit) in a scratch folder, so the checkout (and any process that
  imports it, e.g. a pipeline running on the editable install) never sees a mutant;
- per module, only the functions on the paper's path (:data:`TARGETS`) and only the fast tests that cover them;
- one pytest per mutant in a forked child of a process that has imported torch once (~2 s saved per mutant), the
  session's tiny cache built once from the unmutated snapshot (the modules mutated here do not write it);
- a JSON report and a table: killed / survived / timed out per module, the surviving mutants listed, the known
  equivalent mutants (:data:`EQUIVALENT`, reasons in docs/mutation.md) left out of the score.

Lines inside ``raise`` statements and logging calls are not mutated: their mutants change a message's wording, which
is not on the paper's path.
"""

from __future__ import annotations

import ast
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


#: A module under mutation: its file, the functions on the paper's path (qualified names; None: the whole module),
#: and the fast test files (or node ids) that cover them. Test files missing from a snapshot are left out (a commit
#: before a test file existed), so the same table measures before and after.
@dataclass(frozen=True)
class MutationTarget:
    path: str
    functions: tuple[str, ...] | None
    tests: tuple[str, ...]


TARGETS: dict[str, MutationTarget] = {
    "losses": MutationTarget("jointwsss/losses.py", None, ("tests/test_losses.py",)),
    "metrics": MutationTarget("jointwsss/metrics.py", None, ("tests/test_metrics.py",)),
    "correspondences": MutationTarget(
        "jointwsss/preprocess/correspondences.py", ("VisibilityParams.__post_init__", "view_correspondences"),
        ("tests/test_correspondences.py", "tests/test_visibility_synth.py")),
    "train_wiring": MutationTarget(
        "jointwsss/train.py",
        ("loss_switches", "hashed_settings", "settings_hash", "settings_changes", "data_config", "_to_inputs",
         "resume", "_why_not_resumed"),
        ("tests/test_wiring.py", "tests/test_train.py::test_result_settings_ignore_the_non_result_keys_wherever_they_sit",
         "tests/test_train.py::test_default_to3d_labels_agree_between_config_and_losses",
         "tests/test_train.py::test_incomplete_settings_are_a_clear_error")),
    "experiments_wiring": MutationTarget(
        "jointwsss/experiments.py", ("result_settings", "to3d_labels_of", "_common_settings", "experiment_settings"),
        ("tests/test_wiring.py", "tests/test_train.py::test_result_settings_ignore_the_non_result_keys_wherever_they_sit",
         "tests/test_train.py::test_default_to3d_labels_agree_between_config_and_losses")),
    "evaluate": MutationTarget(
        "jointwsss/evaluate.py",
        ("restricted_argmax", "point_outputs", "predict_points", "predict_image", "combine_allowed", "infer_split",
         "evaluate_predictions"),
        ("tests/test_evaluate.py",)),
    "dataset": MutationTarget(
        "jointwsss/data/dataset.py",
        ("SceneCache.view_pairs", "JointDataset.view_group", "JointDataset.__getitem__", "JointDataset._view",
         "collate_joint"),
        ("tests/test_dataset.py",)),
}

#: Mutants that cannot change behaviour, by module and :func:`mutant_key`; the reason of each is in docs/mutation.md.
EQUIVALENT: dict[str, dict[str, str]] = {
    'losses': {
        'sample_at_pixels: height, width = maps.shape[-2:] -> height, width = maps.shape[+2:]':
            'maps is 4-D (V, K, h, w): shape[2:] is shape[-2:]',
        'pseudo_label_2d: return torch.where(present, scores_2d, torch.full_like(scores_2d, -1.0)).argmax(dim=-1) -> return torch.where(present, scores_2d, torch.full_like(scores_2d, -2.0)).argmax(dim=-1)':
            'scores are sigmoids in [0, 1]: any negative fill keeps absent classes out of the argmax',
        'teacher_targets: @torch.no_grad() -> confidence_over: str = "all", confidence_score: str = "sigmoid") -> tuple[torch.Tensor, torch.Tensor]:':
            'teacher_targets detaches its input first (cam2d_p.detach()): no graph is built with or without no_grad',
        'teacher_targets: if use_confidence else torch.ones_like(cam2d_p[..., 0])) -> if use_confidence else torch.ones_like(cam2d_p[..., 1]))':
            'only the shape of the class slice is used (C = 20 >= 2): ones of the same shape',
        'ground_truth_to_3d_loss: return point_label_loss(cam3d_p, labels_p, torch.ones_like(cam3d_p[..., 0], dtype=torch.float32), valid) -> return point_label_loss(cam3d_p, labels_p, torch.ones_like(cam3d_p[..., 1], dtype=torch.float32), valid)':
            'only the shape of the class slice is used (C = 20 >= 2): ones of the same shape',
        'pcam_like_loss: has_any = counts.squeeze(-1) > 0 -> has_any = counts.squeeze(+1) > 0':
            'counts is (V, 1): squeeze(1) is squeeze(-1)',
        'JointInputs: point_labels: torch.Tensor | None = None  # (B, N) long ground truth per point; only the to3d_labels diagnostics -> point_labels: torch.Tensor & None = None  # (B, N) long ground truth per point; only the to3d_labels diagnostics':
            'an annotation; with `from __future__ import annotations` it is never evaluated',
    },
    'metrics': {
        'confusion_matrix: pred = np.where((pred >= 0) & (pred < NUM_CLASSES), pred, UNKNOWN_COLUMN) -> pred = np.where((pred >= 0) & (pred <= NUM_CLASSES), pred, UNKNOWN_COLUMN)':
            'pred == NUM_CLASSES lands in column NUM_CLASSES, which is UNKNOWN_COLUMN either way',
    },
    'correspondences': {
        'view_correspondences: front = np.flatnonzero(z > 1e-6) -> front = np.flatnonzero(z >= 1e-6)':
            'a point 1-2 micrometres in front of the camera fails the depth test anyway (measured depth >= 1 mm, tolerance a few per cent of it)',
        'view_correspondences: front = np.flatnonzero(z > 1e-6) -> front = np.flatnonzero(z > 2e-06)':
            'a point 1-2 micrometres in front of the camera fails the depth test anyway (measured depth >= 1 mm, tolerance a few per cent of it)',
        'view_correspondences: visible = (measured > 0) & (diff <= np.float32(visibility.tolerance) * measured) -> visible = (measured >= 0) & (diff <= np.float32(visibility.tolerance) * measured)':
            'where measured == 0 the tolerance test is diff <= 0 with diff = z > 0 (front points): false either way',
        'view_correspondences: return front[keep].astype(np.int32), uv.astype(np.float32, copy=False), z[keep].astype(np.float32) -> return front[keep].astype(np.int32), uv.astype(np.float32, copy=True), z[keep].astype(np.float32)':
            'a copy of the same float32 values',
    },
    'experiments_wiring': {
        'result_settings: return {key: result_settings(value) if isinstance(value, dict) else copy.deepcopy(value) -> return {key: result_settings(value) if isinstance(value, dict) else copy.copy(value)':
            'non-dict setting values are scalars or flat lists of scalars: a shallow copy is a deep one',
    },
    'evaluate': {
        'point_outputs: if len(chunks[-1]) < num_points: -> if len(chunks[-1]) <= num_points:':
            'a last chunk of exactly num_points gets a top-up of size 0; Generator.choice(size=0) draws nothing (its state is unchanged, checked)',
        'point_outputs: top_up = rng.choice(n, size=num_points - len(chunks[-1]), replace=n < num_points) -> top_up = rng.choice(n, size=num_points - len(chunks[-1]), replace=n <= num_points)':
            'n == num_points makes one full chunk, so no top-up is drawn; below that both say replace=True',
        'predict_image: uv = image_grid_uv(tuple(x.shape[-2:]), (out_h, out_w), device) -> uv = image_grid_uv(tuple(x.shape[+2:]), (out_h, out_w), device)':
            'x is 4-D (B, 3, H, W): shape[2:] is shape[-2:]',
        'infer_split: passes_3d: int = 1, batch_3d: int = 4, seed: int = 0, device: str = "auto", -> passes_3d: int = 2, batch_3d: int = 4, seed: int = 0, device: str = "auto",':
            "a default of infer_split that no caller uses: cli.py passes passes_3d, batch_3d, seed and device (the CLI's own defaults are tested)",
        'infer_split: passes_3d: int = 1, batch_3d: int = 4, seed: int = 0, device: str = "auto", -> passes_3d: int = 1, batch_3d: int = 5, seed: int = 0, device: str = "auto",':
            "a default of infer_split that no caller uses: cli.py passes passes_3d, batch_3d, seed and device (the CLI's own defaults are tested)",
        'infer_split: passes_3d: int = 1, batch_3d: int = 4, seed: int = 0, device: str = "auto", -> passes_3d: int = 1, batch_3d: int = 4, seed: int = 1, device: str = "auto",':
            "a default of infer_split that no caller uses: cli.py passes passes_3d, batch_3d, seed and device (the CLI's own defaults are tested)",
        'infer_split: passes_3d: int = 1, batch_3d: int = 4, seed: int = 0, device: str = "auto", -> passes_3d: int = 1, batch_3d: int = 4, seed: int = 0, device: str = "XXautoXX",':
            "a default of infer_split that no caller uses: cli.py passes passes_3d, batch_3d, seed and device (the CLI's own defaults are tested)",
        'evaluate_predictions: outside = None if classes is None else np.append(~np.asarray(classes, bool), True)   # index 20: 255 etc. -> outside = None if classes is None else np.append(~np.asarray(classes, bool), False)   # index 20: 255 etc.':
            'the unknown column of the prediction confusion is always empty: predictions are argmaxes over the 20 classes',
    },
    'dataset': {
        'JointDataset.__getitem__: new_index = np.full(len(xyz), -1, dtype=np.int64) -> new_index = np.full(len(xyz), -2, dtype=np.int64)':
            'the sentinel of an unsampled vertex is only tested as < 0',
        'JointDataset._view: if len(mapped) > cfg.max_points_per_view: -> if len(mapped) >= cfg.max_points_per_view:':
            "with len == cap the sorted draw of cap of cap pairs is the identity: the same pairs; only the RNG stream of later draws (next view's crop) shifts, not their distribution",
        'collate_joint: p = max(1, max(len(v["point_idx"]) for _, v in views)) -> p = max(2, max(len(v["point_idx"]) for _, v in views))':
            'padding of views without pairs: the extra padded entry is masked out',
        'collate_joint: "image_size": None if images is None else (images.shape[-1], images.shape[-2]), -> "image_size": None if images is None else (images.shape[-1], images.shape[+2]),':
            'images is 4-D (B, 3, H, W): shape[2] is shape[-2]',
    },
}

#: Imported once by the parent so each forked child skips it.
_WARM_IMPORTS = ("numpy", "torch", "torch.nn.functional", "scipy.spatial", "cv2", "h5py", "zarr", "yaml",
                 "jsonschema", "pytest")


# ----------------------------------------------------------------------------- which mutants
def function_lines(source: str, functions: tuple[str, ...] | None) -> set[int]:
    """0-based line numbers of ``functions`` (qualified names, decorators included; None: every line)."""
    tree = ast.parse(source)
    if functions is None:
        return set(range(len(source.splitlines())))
    found: dict[str, tuple[int, int]] = {}

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                found[name] = (first - 1, child.end_lineno)
                visit(child, name + ".")

    visit(tree, "")
    missing = [f for f in functions if f not in found]
    if missing:
        raise ValueError(f"functions not found: {missing}")
    return {line for f in functions for line in range(*found[f])}


def message_lines(source: str) -> set[int]:
    """0-based lines of ``raise`` statements and ``log.<level>(...)`` calls (their mutants reword messages)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        is_log = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "log")
        if isinstance(node, ast.Raise) or is_log:
            lines.update(range(node.lineno - 1, node.end_lineno))
    return lines


@dataclass(frozen=True)
class Mutant:
    module: str
    number: int          # position among the module's selected mutants
    line_number: int     # 1-based
    function: str
    original: str
    mutated: str
    source: str          # the whole mutated file

    @property
    def key(self) -> str:
        return mutant_key(self.function, self.original, self.mutated)


def mutant_key(function: str, original: str, mutated: str) -> str:
    """A mutant's name that survives edits elsewhere in the file: function, original line -> mutated line."""
    return f"{function}: {original.strip()} -> {mutated.strip()}"


def _function_of_line(source: str) -> dict[int, str]:
    names: dict[int, str] = {}

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                for line in range(first - 1, child.end_lineno):
                    names[line] = name
                visit(child, name + ".")

    visit(ast.parse(source), "")
    return names


def module_mutants(module: str, source: str, target: MutationTarget) -> list[Mutant]:
    """mutmut's mutants of ``source`` on the target's functions, message lines left out."""
    try:
        import mutmut
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("mutation testing needs mutmut 2.x, part of the test extra: "
                                  "pip install -e '.[test]'") from exc

    wanted = function_lines(source, target.functions) - message_lines(source)
    names = _function_of_line(source)
    ids = mutmut.list_mutations(mutmut.Context(source=source, filename=target.path))
    lines = source.splitlines()
    mutants = []
    for mid in ids:
        if mid.line_number not in wanted:
            continue
        mutated_source, _ = mutmut.mutate(mutmut.Context(source=source, filename=target.path, mutation_id=mid))
        mutated_line = mutated_source.splitlines()[mid.line_number]
        mutants.append(Mutant(module, len(mutants), mid.line_number + 1, names.get(mid.line_number, "<module>"),
                              lines[mid.line_number], mutated_line, mutated_source))
    return mutants


# ----------------------------------------------------------------------------- running
def snapshot(repo: Path, rev: str, dest: Path) -> Path:
    """The tree of commit ``rev`` of ``repo`` under ``dest`` (``git archive``): what the mutants are made of."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


class _PytestPlugin:
    """In the child: serve the prebuilt tiny cache to conftest's ``tiny_cache`` fixture, record the first failure."""

    def __init__(self, tiny_cache: Path | None, report: Path):
        self.tiny_cache, self.report = tiny_cache, report

    def pytest_plugin_registered(self, plugin):
        if self.tiny_cache is not None and getattr(plugin, "build_tiny_cache", None) is not None:
            plugin.build_tiny_cache = lambda root, **kw: self.tiny_cache

    def pytest_runtest_logreport(self, report):
        if report.failed and not self.report.exists():
            self.report.write_text(report.nodeid)


def _project_modules() -> list[str]:
    """Names in ``sys.modules`` of modules not from the interpreter's libraries: the checkout's ``jointwsss`` (an
    editable install) and any test modules and conftest a surrounding pytest session imported."""
    libraries = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
    names = []
    for name, module in list(sys.modules.items()):
        if name == "__main__":
            continue
        if name in ("jointwsss", "conftest") or name.startswith(("jointwsss.", "test_")):
            names.append(name)
            continue
        file = getattr(module, "__file__", None)
        if file and not os.path.realpath(file).startswith(libraries):
            names.append(name)
    return names


def _run_in_child(tree: Path, tests: list[str], tiny_cache: Path | None, work: Path, timeout: float) -> tuple[str, str]:
    """Run pytest on ``tests`` in a forked child inside ``tree``: ("passed" | "failed" | "timeout", failing test)."""
    report = work / "failed_test"
    report.unlink(missing_ok=True)
    log_path = work / "pytest.log"
    pid = os.fork()
    if pid == 0:  # the child: import the snapshot's jointwsss (never the checkout's), run pytest, exit
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(tree)
            sys.path.insert(0, str(tree))
            # the driver may run inside a pytest session of the checkout, which has imported the checkout's
            # jointwsss, its conftest and test modules of the same names as the snapshot's: forget all of them, so
            # the tests import the snapshot's (pytest refuses a test file whose module name is already another's)
            for name in _project_modules():
                del sys.modules[name]
            sys.dont_write_bytecode = True
            import pytest

            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--basetemp", str(work / "tmp"), *tests],
                               plugins=[_PytestPlugin(tiny_cache, report)])
            os._exit(int(code))
        except BaseException:  # noqa: BLE001 -- a forked child must never return into the driver's loop
            os._exit(99)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", ""
        time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    failed = report.read_text() if report.exists() else ""
    if code == 0:
        return "passed", ""
    if code == 5:  # no tests collected: a mapping error, not a kill
        raise RuntimeError(f"no tests collected from {tests}; see {log_path}")
    return "failed", failed or f"pytest exit {code}"


def _build_tiny_cache(tree: Path, work: Path) -> Path:
    """The tests' tiny cache, built once by the unmutated snapshot's conftest (in a child of its own)."""
    out = work / "tiny"
    script = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/tests'];"
              "from conftest import build_tiny_cache; from pathlib import Path; build_tiny_cache(Path(sys.argv[2]))")
    code = subprocess.run([sys.executable, "-c", script, str(tree), str(out)], cwd=tree, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(tree)}, check=False)
    if code.returncode != 0:
        raise RuntimeError(f"building the tiny cache failed:\n{code.stderr[-3000:]}")
    return out / "cache"


def run_module(module: str, tree: Path, work: Path, tiny_cache: Path | None, *, limit: int | None = None,
               killed_before: dict[str, str] | None = None, progress=None) -> dict:
    """Every selected mutant of one module against its tests; the module's result (see :func:`run_mutation`).

    ``killed_before``: {mutant key: test} of an earlier run whose tests this snapshot still has; those mutants are
    not run again (a test that killed a mutant still kills it) and keep their killer, marked ``"(earlier run)"``.
    """
    target = TARGETS[module]
    tests = [t for t in target.tests if (tree / t.split("::")[0]).is_file()]
    if not tests:
        raise RuntimeError(f"{module}: none of its test files exist in the snapshot: {target.tests}")
    path = tree / target.path
    original = path.read_text()
    t0 = time.perf_counter()
    status, _ = _run_in_child(tree, tests, tiny_cache, work, timeout=1800)
    baseline = time.perf_counter() - t0
    if status != "passed":
        raise RuntimeError(f"{module}: the unmutated tests do not pass ({tests}); see {work / 'pytest.log'}")
    mutants = module_mutants(module, original, target)[:limit]
    equivalent = EQUIVALENT.get(module, {})
    results = []
    try:
        for mutant in mutants:
            if killed_before and mutant.key in killed_before:
                outcome, by = "failed", f"{killed_before[mutant.key]} (earlier run)"
            else:
                path.write_text(mutant.source)
                outcome, by = _run_in_child(tree, tests, tiny_cache, work, timeout=3 * baseline + 10)
                path.write_text(original)
            results.append({"number": mutant.number, "line": mutant.line_number, "function": mutant.function,
                            "original": mutant.original.strip(), "mutated": mutant.mutated.strip(),
                            "outcome": "survived" if outcome == "passed" else ("killed" if outcome == "failed"
                                                                               else "timeout"),
                            "killed_by": by, "equivalent": equivalent.get(mutant.key)})
            if progress is not None:
                progress(module, len(results), len(mutants), results[-1])
    finally:
        path.write_text(original)
    return module_summary(module, target, tests, results, time.perf_counter() - t0, baseline)


def module_summary(module: str, target: MutationTarget, tests: list[str], results: list[dict], seconds: float,
                   baseline: float) -> dict:
    """Counts of one module's mutants; the score is killed (timeouts included) over the non-equivalent ones."""
    counted = [r for r in results if r["equivalent"] is None]
    killed = sum(r["outcome"] != "survived" for r in counted)
    return {
        "path": target.path, "functions": list(target.functions) if target.functions else "all", "tests": tests,
        "mutants": len(results), "equivalent": len(results) - len(counted), "non_equivalent": len(counted),
        "killed": killed, "timeout": sum(r["outcome"] == "timeout" for r in counted),
        "survived": len(counted) - killed,
        "score": round(killed / len(counted), 4) if counted else None,
        "seconds": round(seconds, 1), "baseline_seconds": round(baseline, 1),
        "surviving": [r for r in counted if r["outcome"] == "survived"],
        "equivalents": [r for r in results if r["equivalent"] is not None],
        "results": results,
    }


def with_equivalents(result: dict) -> dict:
    """``result`` (of :func:`run_mutation`, possibly an old one) with :data:`EQUIVALENT` applied and re-counted: the
    list of equivalent mutants lives here only, so a before and an after report are scored alike."""
    for module, m in result["modules"].items():
        known = EQUIVALENT.get(module, {})
        for r in m["results"]:
            r["equivalent"] = known.get(mutant_key(r["function"], r["original"], r["mutated"]))
        result["modules"][module] = module_summary(module, TARGETS[module], m["tests"], m["results"], m["seconds"],
                                                   m["baseline_seconds"])
    return result


def killed_mutants(earlier: dict, module: str) -> dict[str, str]:
    """{mutant key: killing test} of ``module`` in an earlier result of :func:`run_mutation`."""
    results = earlier.get("modules", {}).get(module, {}).get("results", [])
    return {mutant_key(r["function"], r["original"], r["mutated"]): r["killed_by"].removesuffix(" (earlier run)")
            for r in results if r["outcome"] != "survived"}


def run_mutation(repo: Path, rev: str, modules: list[str], *, work_dir: Path | None = None, limit: int | None = None,
                 earlier: dict | None = None, progress=None) -> dict:
    """Mutation scores of ``modules`` (keys of :data:`TARGETS`) on commit ``rev`` of ``repo``.

    Returns ``{"rev", "commit", "modules": {module: {... "killed", "survived", "score", "surviving": [...]}}}``.
    ``limit`` caps the mutants per module (a smoke run); ``earlier``, a result of an older commit whose tests this
    one keeps, spares re-running the mutants it killed (:func:`run_module`).
    """
    unknown = sorted(set(modules) - set(TARGETS))
    if unknown:
        raise ValueError(f"unknown modules {unknown}; choose from {', '.join(TARGETS)}")
    for name in _WARM_IMPORTS:
        __import__(name)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", rev], check=True, capture_output=True,
                            text=True).stdout.strip()
    scratch = Path(tempfile.mkdtemp(prefix="mutation-", dir=work_dir))
    try:
        tree = snapshot(repo, commit, scratch / "tree")
        needs_cache = any("tiny_cache" in (tree / t.split("::")[0]).read_text()
                          for m in modules for t in TARGETS[m].tests if (tree / t.split("::")[0]).is_file())
        tiny_cache = _build_tiny_cache(tree, scratch) if needs_cache else None
        result = {"rev": rev, "commit": commit, "modules": {}}
        for module in modules:
            result["modules"][module] = run_module(
                module, tree, scratch, tiny_cache, limit=limit, progress=progress,
                killed_before=killed_mutants(earlier, module) if earlier else None)
        return with_equivalents(result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------- reporting
def table_lines(result: dict) -> list[str]:
    """A Markdown table of the per-module scores, then the surviving mutants of each module."""
    lines = [f"Mutation scores at {result['commit'][:10]} ({result['rev']})", "",
             "| module | mutants | equivalent | killed / non-equivalent | score | survived | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for module, m in result["modules"].items():
        score = "n/a" if m["score"] is None else f"{100 * m['score']:.1f} %"
        lines.append(f"| {module} | {m['mutants']} | {m['equivalent']} | {m['killed']} / {m['non_equivalent']} | "
                     f"{score} | {m['survived']} | {m['seconds']:.0f} |")
    for module, m in result["modules"].items():
        if m["surviving"]:
            lines += ["", f"Surviving mutants of {module} ({m['path']}):"]
            lines += [f"- line {r['line']} ({r['function']}): `{r['original']}` -> `{r['mutated']}`"
                      for r in m["surviving"]]
    return lines


def summary_lines(result: dict) -> list[str]:
    """One log line per module."""
    lines = []
    for module, m in result["modules"].items():
        score = "" if m["score"] is None else f" ({100 * m['score']:.1f} %)"
        lines.append(f"{module}: {m['killed']}/{m['non_equivalent']} killed{score}, {m['survived']} survived, "
                     f"{m['equivalent']} equivalent, {m['seconds']:.0f} s")
    return lines
