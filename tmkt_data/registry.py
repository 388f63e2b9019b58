"""Things created by name (formats, dataset layouts, RGB sources, models), one mechanism for all.

Each item is registered in the module that defines it, like timm's ``register_model``::

    LAYOUTS = Registry("dataset", LayoutError, modules=("tmkt_data.layouts.nmnist", ...))

    @LAYOUTS.register("nmnist")          # in tmkt_data/layouts/nmnist.py
    def scan(root, **options): ...

    LAYOUTS.get("nmnist")                # the scan function
    LAYOUTS.get("nope")                  # LayoutError: unknown dataset 'nope', expected one of ...

``modules`` are imported on the first lookup (not when the registry is made), so a package
whose items live in submodules stays cheap to import; they also fix the order of
:meth:`Registry.names` (module by module, in the order given, then each module's registration
order), whatever order the modules happen to be imported in.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _origin(item: Any) -> str | None:
    """The module that defines ``item`` (the module itself for a module)."""
    if isinstance(item, ModuleType):
        return item.__name__
    return getattr(item, "__module__", None)


class Registry(Generic[T]):
    """Named items of one kind, in registration order.

    Args:
        kind: what an item is, as error messages say it (``"format"``, ``"RGB source"``).
        error: the project exception raised (with one line) for an unknown or duplicate name.
        modules: modules that register items when imported; imported on the first lookup.
    """

    def __init__(self, kind: str, error: Callable[[str], Exception], *, modules: Iterable[str] = ()):
        self.kind = kind
        self.error = error
        self._modules = tuple(modules)
        self._items: dict[str, T] = {}
        self._loaded = not self._modules
        self._lock = threading.Lock()

    def register(self, name: str, item: T | None = None) -> Any:
        """Register ``item`` under ``name``; without ``item``, a decorator that registers what it decorates.

        Registering the same object again is a no-op; another object under a taken name is an error.
        """

        def add(obj: T) -> T:
            old = self._items.get(name)
            if old is not None and old is not obj:
                raise self.error(f"{self.kind} name {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add if item is None else add(item)

    def load(self) -> None:
        """Import the registering modules (done by every lookup; idempotent, thread-safe)."""
        if self._loaded:
            return
        with self._lock:  # register() takes no lock: a module imported by another thread can finish
            if self._loaded:
                return
            for module in self._modules:
                importlib.import_module(module)
            rank = {m: i for i, m in enumerate(self._modules)}
            order = sorted(self._items, key=lambda n: rank.get(_origin(self._items[n]), len(rank)))
            self._items = {n: self._items[n] for n in order}  # stable: registration order within a module
            self._loaded = True

    def unknown(self, name: Any) -> str:
        """The one-line message for an unknown ``name``, listing the known ones."""
        return f"unknown {self.kind} {name!r}, expected one of {', '.join(self.names())}"

    def get(self, name: str, *, error: Callable[[str], Exception] | None = None) -> T:
        """The item registered as ``name``.

        Raises:
            the registry's error (or ``error``, e.g. one that names a file): an unknown name,
            one line listing the known names.
        """
        self.load()
        try:
            return self._items[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise (error or self.error)(self.unknown(name)) from None

    __getitem__ = get

    def names(self) -> list[str]:
        """Registered names, in order."""
        self.load()
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        self.load()
        return list(self._items.items())

    def values(self) -> list[T]:
        self.load()
        return list(self._items.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load()
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        self.load()
        try:
            return name in self._items
        except TypeError:
            return False

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names() if self._loaded else '<not loaded>'})"


__all__ = ["Registry"]
