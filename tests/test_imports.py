"""No import cycles inside `hjepa_jax/`, lazy (function-level) imports included.

Lazy imports hide cycles; they do not remove them: a module that imports another inside a function still
depends on it, and the two can no longer be understood, tested or moved apart. Every import statement of
every module (module level, inside functions, under `if TYPE_CHECKING:`) is read with `ast`, without
importing anything, so the cycle check takes well under a second and needs neither JAX nor TensorFlow.
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = "hjepa_jax"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _module_name(path: Path) -> str:
  parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _modules() -> dict[str, Path]:
  """Dotted name -> file of every module of the package (packages by their __init__.py)."""
  return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
  """The package's modules that `name` imports anywhere in its file.

  `import a.b.c` and `from a.b import c` name a.b.c where that is a module (c may be a submodule or a
  name defined in a.b); relative imports are resolved against the module's package. Importing a
  submodule also runs its parent packages' __init__, but those edges are left out: a package that
  re-exports its submodules would otherwise be in a cycle with each of them by construction.
  """
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  out = set()

  def nearest_module(dotted: str) -> str | None:
    while dotted and dotted not in modules:
      dotted = dotted.rpartition(".")[0]
    return dotted or None

  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
      else:
        source = node.module or ""
      targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names]
    else:
      continue
    for target in targets:
      if target == PACKAGE or target.startswith(PACKAGE + "."):
        module = nearest_module(target)
        if module and module != name:
          out.add(module)
  return out


def import_graph() -> dict[str, set[str]]:
  modules = _modules()
  return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One shortest cycle through the first module of each strongly connected component that has one (Tarjan,
  then BFS); `strongly_connected` lists the whole components."""
  return [_shortest_cycle(graph, component) for component in strongly_connected(graph)]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module, each sorted."""
  index, low, on_stack, stack, components = {}, {}, set(), [], []

  def strongconnect(v):  # iterative would be longer; the package is far below the recursion limit
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        strongconnect(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        components.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      strongconnect(v)

  return sorted(components)


def _shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
  """A shortest cycle from the component's first module back to it (breadth-first inside the component)."""
  members, start = set(component), component[0]
  parent, frontier, closing = {start: None}, [start], None
  while frontier and closing is None:
    nxt = []
    for v in frontier:
      if start in graph[v]:
        closing = v
        break
      for w in sorted(graph[v] & members):
        if w not in parent:
          parent[w] = v
          nxt.append(w)
    frontier = nxt
  path, v = [], closing
  while v is not None:
    path.append(v)
    v = parent[v]
  return path[::-1] + [start]


def test_graph_sees_lazy_and_relative_imports():
  graph = import_graph()
  assert len(graph) > 40, sorted(graph)
  # Sanity of the parser on known edges: a module-level import, an import of a submodule by
  # `from package import submodule`, and a function-level one.
  assert "hjepa_jax.config" in graph["hjepa_jax.experiment"]
  assert "hjepa_jax.data.augment" in graph["hjepa_jax.data.pipeline"]
  assert "hjepa_jax.data" in graph["hjepa_jax.experiment"]  # imported inside a function


def test_relative_and_function_level_imports_resolve(tmp_path):
  path = tmp_path / "a.py"
  path.write_text(
    "from . import b\nfrom .c import thing\n\ndef f():\n  from ..top import helper\n  import hjepa_jax.pkg.d.e\n"
  )
  modules = dict.fromkeys(["hjepa_jax.pkg.a", "hjepa_jax.pkg.b", "hjepa_jax.pkg.c", "hjepa_jax.pkg.d", "hjepa_jax.top"])
  assert _imports("hjepa_jax.pkg.a", path, modules) == {
    "hjepa_jax.pkg.b",
    "hjepa_jax.pkg.c",
    "hjepa_jax.top",
    "hjepa_jax.pkg.d",  # d.e is no module: the nearest one that is
  }


def test_find_cycles_reports_a_cycle():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert find_cycles(graph) == [["a", "b", "c", "a"]]
  assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
  graph = import_graph()
  lines = []
  for component in strongly_connected(graph):
    cycle = _shortest_cycle(graph, component)
    lines.append("  " + " -> ".join(cycle))
    if len(component) > len(cycle) - 1:
      lines.append(f"    (all of these import one another: {', '.join(component)})")
  text = "\n".join(lines)
  if lines:
    print(f"import cycles in {PACKAGE}/ (lazy imports included):\n{text}")
  assert not lines, f"import cycles in {PACKAGE}/ (lazy imports included):\n{text}"


def test_report_is_plain_python_and_agrees_with_the_runner_on_result_paths():
  # report.py reads the offline results through evaluation/results.py, not the runner (JAX, experiment.py,
  # which imports report.py for its criteria names).
  code = "import sys, hjepa_jax.report; assert 'jax' not in sys.modules and 'tensorflow' not in sys.modules"
  subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent, timeout=120)
  from hjepa_jax.evaluation import results, runner  # pylint: disable=g-import-not-at-top  (JAX)

  for kw in ({}, {"encoder": "online"}, {"random_init": True}, {"ext": "md"}, {"ext": "md", "encoder": "online"}):
    assert runner.results_path("/w", **kw) == results.results_path("/w", **kw), kw
