"""The warm pool: idle children kept per (environment, bundle), bounded, least-recently-used out."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from modelops.runtime.child import WarmChild


class WarmPool:
    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self._idle: OrderedDict[int, tuple[Hashable, WarmChild]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def acquire(self, key: Hashable, start: Callable[[], WarmChild]) -> Iterator[WarmChild]:
        """A child for `key`: an idle one if there is one, else a new one; returned after use
        if it is still fit for another task."""
        child = self._take(key) or start()
        try:
            yield child
        finally:
            if child.reusable:
                self._give_back(key, child)
            else:
                child.close()

    def _take(self, key: Hashable) -> WarmChild | None:
        with self._lock:
            for token, (idle_key, child) in reversed(self._idle.items()):
                if idle_key == key:
                    del self._idle[token]
                    if child.reusable:
                        return child
                    child.close()
                    return None
        return None

    def _give_back(self, key: Hashable, child: WarmChild) -> None:
        evicted = []
        with self._lock:
            self._idle[id(child)] = (key, child)
            while len(self._idle) > self.max_idle:
                _, (_, old) = self._idle.popitem(last=False)
                evicted.append(old)
        for old in evicted:
            old.close()

    def close(self) -> None:
        with self._lock:
            children = [child for _, child in self._idle.values()]
            self._idle.clear()
        for child in children:
            child.close()
