"""The in-process backend (the default): a bounded LRU map with per-entry expiry.

One `OrderedDict` over all partitions keeps the LRU order (a hit moves the entry to the end, an
insert beyond `max_entries` drops the front); expired entries are dropped when read and when
statistics are taken. Semantic records need no copy here: the process's own vector index is the
only reader (`shares_semantic` is False). Nothing survives a restart.
"""

from __future__ import annotations

from collections import OrderedDict

from .base import Entry, PartitionStats, SemRecord, StatField


class MemoryBackend:
    name = "memory"
    shares_semantic = False

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._stats: dict[str, PartitionStats] = {}

    def _stat(self, partition: str) -> PartitionStats:
        st = self._stats.get(partition)
        if st is None:
            st = self._stats[partition] = PartitionStats(partition)
        return st

    async def get(self, partition: str, key: str, now: float, *, count: bool = True) -> Entry | None:
        k = (partition, key)
        e = self._data.get(k)
        if e is not None:
            if e.expires_at > now:
                self._data.move_to_end(k)
                if count:
                    st = self._stat(partition)
                    st.hits += 1
                    st.saved_nano += e.cost_nano
                return e
            del self._data[k]
            self._stat(partition).entries -= 1
        if count:
            self._stat(partition).misses += 1
        return None

    async def put(self, partition: str, key: str, entry: Entry, now: float) -> None:
        k = (partition, key)
        st = self._stat(partition)
        st.stores += 1
        if k in self._data:
            self._data.move_to_end(k)
        else:
            st.entries += 1
        self._data[k] = entry
        while len(self._data) > self.max_entries:
            (p, _), _ = self._data.popitem(last=False)
            self._stat(p).entries -= 1

    async def record(self, partition: str, what: StatField, saved_nano: int = 0) -> None:
        st = self._stat(partition)
        setattr(st, what, getattr(st, what) + 1)
        st.saved_nano += saved_nano

    async def sem_add(self, partition: str, space: str, rec: SemRecord) -> None:
        return None

    async def sem_since(self, partition: str, space: str, cursor: str, now: float) -> tuple[list[SemRecord], str]:
        return [], cursor

    def _purge(self, now: float) -> None:
        expired = [k for k, e in self._data.items() if e.expires_at <= now]
        for k in expired:
            del self._data[k]
            self._stat(k[0]).entries -= 1

    async def stats(self, partition: str | None, now: float) -> list[PartitionStats]:
        self._purge(now)
        parts = [partition] if partition is not None else list(self._stats)
        out = []
        for p in parts:
            st = self._stats.get(p)
            if st is not None:
                out.append(PartitionStats(p, st.entries, st.hits, st.semantic_hits, st.misses, st.stores, st.saved_nano))
        return out

    async def clear(self, partition: str | None) -> int:
        if partition is None:
            n = len(self._data)
            self._data.clear()
            for st in self._stats.values():
                st.entries = 0
            return n
        doomed = [k for k in self._data if k[0] == partition]
        for k in doomed:
            del self._data[k]
        if partition in self._stats:
            self._stats[partition].entries = 0
        return len(doomed)

    async def close(self) -> None:
        return None
