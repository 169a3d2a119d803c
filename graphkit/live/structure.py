"""Guarantee circles and device rings kept current edge by edge.

Both start from the batch result on the snapshot (``graphkit.analytics.circles`` and
``graphkit.analytics.rings``: the same kernels, so the start is exact) and then change only
where an event touches them.

* **Circles** (strongly connected components with >= 2 members of guarantor -> borrower): edges
  are only ever added, and adding ``u -> v`` changes the components exactly when ``v`` already
  reaches ``u``; then every customer on a path ``v -> ... -> u`` joins one circle with ``u`` and
  ``v`` (the components on those paths merge). The new elementary cycles are the edge plus each
  simple path ``v -> u`` of at most ``L - 1`` edges.
* **Rings** (components of customers joined through shared devices; a device with ``k <= n <=
  m`` customers is shared, one with ``n > m`` is a hub and joins nobody): a device reaching ``k``
  customers ties them; one more customer on a shared device joins its ring; a device passing
  ``m`` stops tying, and the one ring it was part of is recomputed, since it may split.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CircleChange:
    """A circle formed or grown by a new guarantee: its members (all, after the merge), the
    labels of the circles merged into it, and the new elementary cycles through the edge."""

    label: int
    members: set[str]
    merged: list[int]
    cycles: list[list[str]] = field(default_factory=list)


class LiveCircles:
    """Guarantee graph adjacency and circle labels (customer -> label for circle members)."""

    def __init__(self, max_cycle_length: int, max_cycles_listed: int) -> None:
        self.max_cycle_length = max_cycle_length
        self.max_cycles_listed = max_cycles_listed
        self.out: dict[str, set[str]] = defaultdict(set)
        self.inn: dict[str, set[str]] = defaultdict(set)
        self.circle_of: dict[str, int] = {}
        self.members: dict[int, set[str]] = {}
        self._next = 1

    def load(self, edges: list[tuple[str, str]], membership: list[tuple[int, str]]) -> None:
        """Start from the snapshot's edges and batch membership (circle_id, customer_id)."""
        for u, v in edges:
            self.out[u].add(v)
            self.inn[v].add(u)
        for label, customer in membership:
            self.circle_of[customer] = label
            self.members.setdefault(label, set()).add(customer)
        self._next = max(self.members, default=0) + 1

    def add(self, u: str, v: str) -> CircleChange | None:
        """Add guarantee ``u -> v``; returns the circle it closed or grew, else None.

        Cost: O(1) when the edge exists or ``u`` has no guarantor; otherwise a forward search
        from ``v`` (O(customers and guarantees reachable from v)) and, when it finds ``u``, a
        backward search from ``u`` inside that set and the bounded cycle search through the
        edge (O(simple paths of < L edges from v to u)).
        """
        if v in self.out[u]:
            return None
        self.out[u].add(v)
        self.inn[v].add(u)
        same = self.circle_of.get(u)
        if same is not None and same == self.circle_of.get(v):
            return CircleChange(
                same, self.members[same], [], self._cycles(u, v, self.members[same])
            )
        if not self.inn.get(u) or not self.out.get(v):
            return None
        forward = _search(v, self.out)
        if u not in forward:
            return None
        on_path = _search(u, self.inn, within=forward)
        labels = sorted({self.circle_of[c] for c in on_path if c in self.circle_of})
        keep = max(labels, key=lambda lab: len(self.members[lab])) if labels else self._new()
        members = self.members.setdefault(keep, set())
        for label in labels:
            if label != keep:
                for c in self.members.pop(label):
                    self.circle_of[c] = keep
                    members.add(c)
        for c in on_path:
            self.circle_of[c] = keep
            members.add(c)
        merged = [lab for lab in labels if lab != keep]
        return CircleChange(keep, members, merged, self._cycles(u, v, members))

    def _new(self) -> int:
        self._next += 1
        return self._next - 1

    def _cycles(self, u: str, v: str, inside: set[str]) -> list[list[str]]:
        """Elementary cycles through ``u -> v`` of at most L edges, each rotated to start at its
        smallest customer id; at most ``max_cycles_listed``."""
        limit = self.max_cycle_length - 1
        found: list[list[str]] = []
        path = [u, v]
        on = {u, v}

        def extend(node: str) -> None:
            if len(found) >= self.max_cycles_listed:
                return
            if node == u:
                return
            for nxt in sorted(self.out.get(node, ())):
                if nxt == u:
                    cycle = path[:]
                    start = cycle.index(min(cycle))
                    found.append(cycle[start:] + cycle[:start])
                    continue
                if nxt in on or nxt not in inside or len(path) > limit:
                    continue
                path.append(nxt)
                on.add(nxt)
                extend(nxt)
                on.discard(nxt)
                path.pop()

        if v == u:
            return []
        extend(v)
        return sorted(found, key=lambda c: (len(c), c))

    def membership(self) -> list[tuple[str, int]]:
        return [(c, label) for label, ms in self.members.items() for c in ms]


def _search(start: str, adjacency: dict[str, set[str]], within: set[str] | None = None) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in adjacency.get(node, ()):
            if nxt not in seen and (within is None or nxt in within):
                seen.add(nxt)
                queue.append(nxt)
    return seen


@dataclass
class RingChange:
    """Customers whose ring changed: ``joined`` maps customer -> ring label now; ``left`` lists
    customers no longer in any ring (after a device became a hub)."""

    joined: dict[str, int]
    left: list[str]


# Up to this many customers of a device (devices of a customer) are a tuple, not a set: a set
# costs 216 bytes however small, a tuple of one 48; most devices have one or two customers.
_SMALL = 8


def _put(table: dict[str, Any], key: str, item: str) -> Any:
    """Add ``item`` to ``table[key]`` (a tuple of at most ``_SMALL``, else a set; the key may
    be absent, or a set made empty by a ``defaultdict`` look-up); returns the collection now
    there. O(1) for sets, O(_SMALL) for tuples."""
    users = table.get(key, ())
    if type(users) is tuple:
        users = (*users, item) if len(users) < _SMALL else {*users, item}
    else:
        users.add(item)
    table[key] = users
    return users


def _compact(table: dict[str, Any]) -> None:
    """Sets of at most ``_SMALL`` items as tuples (in sorted order). O(items)."""
    for key, items in table.items():
        if len(items) <= _SMALL:
            table[key] = tuple(sorted(items))


class LiveRings:
    """Device use pairs and ring labels (customer -> label for ring members).

    ``device_customers`` / ``customer_devices``: a device's customers, a customer's devices,
    each a tuple while small (``_SMALL``), else a set."""

    def __init__(self, min_customers: int, max_customers: int) -> None:
        self.k = min_customers
        self.m = max_customers
        self.device_customers: dict[str, set[str]] = defaultdict(set)
        self.customer_devices: dict[str, set[str]] = defaultdict(set)
        self.ring_of: dict[str, int] = {}
        self.members: dict[int, set[str]] = {}
        self._next = 1

    def load(self, pairs: list[tuple[str, str]], membership: list[tuple[int, str]]) -> None:
        """Start from the snapshot's (customer, device) use pairs and batch ring membership."""
        for customer, device in pairs:
            self.device_customers[device].add(customer)
            self.customer_devices[customer].add(device)
        _compact(self.device_customers)
        _compact(self.customer_devices)
        for label, customer in membership:
            self.ring_of[customer] = label
            self.members.setdefault(label, set()).add(customer)
        self._next = max(self.members, default=0) + 1

    def shared(self, device: str) -> bool:
        return self.k <= len(self.device_customers.get(device, ())) <= self.m

    def add(self, customer: str, device: str) -> RingChange | None:
        """Record that ``customer`` uses ``device``; returns the ring change, else None.

        Cost: O(1) below k customers and for hubs; O(k) when the device becomes shared;
        O(size of the smaller ring) for a merge (small into large); O(ring size + its devices'
        customers) when the device becomes a hub and its ring is recomputed.
        """
        if customer in self.device_customers.get(device, ()):
            return None
        users = _put(self.device_customers, device, customer)
        _put(self.customer_devices, customer, device)
        n = len(users)
        if n < self.k or n > self.m + 1:
            return None
        if n == self.m + 1:
            old = {c for c in users if c != customer}
            label = next((self.ring_of[c] for c in old if c in self.ring_of), None)
            return self._recompute(label) if label is not None else None
        return self._union(users)

    def _union(self, customers: set[str]) -> RingChange:
        labels = {self.ring_of[c] for c in customers if c in self.ring_of}
        keep = max(labels, key=lambda lab: len(self.members[lab])) if labels else self._new()
        members = self.members.setdefault(keep, set())
        joined: dict[str, int] = {}
        for label in labels:
            if label != keep:
                for c in self.members.pop(label):
                    self.ring_of[c] = keep
                    members.add(c)
                    joined[c] = keep
        for c in customers:
            if self.ring_of.get(c) != keep:
                self.ring_of[c] = keep
                members.add(c)
                joined[c] = keep
        return RingChange(joined, [])

    def _recompute(self, label: int) -> RingChange:
        """Split ring ``label`` into the components its members still form."""
        old = self.members.pop(label)
        for c in old:
            del self.ring_of[c]
        joined: dict[str, int] = {}
        left: list[str] = []
        done: set[str] = set()
        for start in sorted(old):
            if start in done:
                continue
            component = {start}
            queue = deque([start])
            while queue:
                c = queue.popleft()
                for device in self.customer_devices.get(c, ()):
                    if not self.shared(device):
                        continue
                    for other in self.device_customers[device]:
                        if other not in component:
                            component.add(other)
                            queue.append(other)
            done |= component
            if len(component) == 1:
                left.append(start)
                continue
            new = self._new()
            self.members[new] = component
            for c in component:
                self.ring_of[c] = new
                joined[c] = new
        return RingChange(joined, left)

    def _new(self) -> int:
        self._next += 1
        return self._next - 1

    def membership(self) -> list[tuple[str, int]]:
        return [(c, label) for label, ms in self.members.items() for c in ms]
