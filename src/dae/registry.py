"""Short name -> constructor registries (`"vqgan-f4"`, `"toy-vae"`), instead of class paths."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dae.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of constructors; unknown names fail with the closest known names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@MODELS.register("toy-vae")`."""

        def add(obj: T) -> T:
            if name in self._items:
                raise UnknownNameError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            close = difflib.get_close_matches(name, list(self._items), n=3)
            hint = f"; did you mean {close}?" if close else f"; known: {sorted(self._items)}"
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}")
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
