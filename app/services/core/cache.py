"""One keyed cache for what is costly to build and shared between requests.

Road graphs, geocoders, the category index, the calendar and map payloads are built once
per key (a fingerprint of the rows they come from) and kept for the next request. Every
cache registers itself here, so a test (and a restore) can forget them all with
``reset_caches()``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_REGISTRY: list[KeyedCache] = []


class KeyedCache(Generic[V]):
    """A thread-safe least-recently-used cache holding at most ``maxsize`` values.

    Parameters
    ----------
    name
        What the cache holds, for debugging.
    maxsize
        How many keys to keep; a new key past this drops the least recently used.
    """

    def __init__(self, name: str, *, maxsize: int = 1) -> None:
        self.name = name
        self.maxsize = maxsize
        self.lock = threading.RLock()
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        _REGISTRY.append(self)

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        """Return the value kept for ``key``, or ``default``."""
        with self.lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: V) -> V:
        """Keep ``value`` under ``key`` and return it."""
        with self.lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        """Return the value for ``key``, building it once (under the lock) when missing."""
        with self.lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return self.put(key, build())

    def clear(self) -> None:
        """Forget every value."""
        with self.lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def reset_caches() -> None:
    """Forget the values of every cache (tests call this between apps; restore after loading)."""
    for cache in _REGISTRY:
        cache.clear()
