"""Issue 11's size limits, checked on the source: no function body over 80 lines and no module
over 600 lines in the library, Numba kernels (and modules of nothing but kernels) aside."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tmkt_data", "tmkt_train")
MAX_BODY_LINES = 80
MAX_MODULE_LINES = 600
#: numba decorators: a function carrying one is a kernel (written as one flat loop on purpose)
KERNEL_DECORATORS = {"njit", "jit", "vectorize", "guvectorize", "cfunc", "stencil", "generated_jit"}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _is_kernel(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in KERNEL_DECORATORS:
            return True
    return False


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of the body, from its first statement after the docstring to its last line."""
    body = fn.body
    first = body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_the_scan_sees_the_library() -> None:
    mods = _modules()
    assert len(mods) > 50
    assert any(_is_kernel(f) for m in mods for f in _functions(ast.parse(m.read_text(encoding="utf-8"))))


def test_no_long_function_outside_kernels() -> None:
    long = []
    for path in _modules():
        for fn in _functions(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            n = _body_lines(fn)
            if n > MAX_BODY_LINES and not _is_kernel(fn):
                long.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name} ({n} lines)")
    assert not long, f"function bodies over {MAX_BODY_LINES} lines (split them into helpers): " + "; ".join(
        long
    )


def test_no_long_module_outside_kernel_files() -> None:
    long = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        n = len(text.splitlines())
        fns = _functions(ast.parse(text, str(path)))
        kernel_file = bool(fns) and all(_is_kernel(f) for f in fns)
        if n > MAX_MODULE_LINES and not kernel_file:
            long.append(f"{path.relative_to(ROOT)} ({n} lines)")
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them): " + "; ".join(long)
