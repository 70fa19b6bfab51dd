"""The sold-out fast path: once this hub knows a sale is sold out, a buy with a key Redis has
never answered gets `sold_out` from the hub, without a Redis call.

The rule (docs/protocol.md, "Flash sales"), and why it is sound:

1. A buy refused `sold_out` by Redis tells the hub the sale sold out. The hub then reads the
   sale (status, stock, limit, end) and, after that read, every idempotency field of the
   sale (HSCAN: every (user, key) pair Redis holds a first answer for). Only if the read
   says sold out (stock 0, not closed) does it keep that set.
2. A buy whose (user, key) is in the set goes to Redis, which replays its first answer (an
   order, or whatever it got): a retried key always gets its first answer, whichever hub
   it was first sent through.
3. Any other buy would meet an empty stock in Redis: every key answered since the read met
   the same empty stock (HSCAN returns every field present when the scan began; one added
   later was answered `sold_out` unless the stock came back, see 4). So the hub answers
   `sold_out` itself, unless the buy's quantity is above the limit or the sale's end has
   passed (Redis would answer `bad_field` / `ended`: those go to Redis).
4. Anything that may bring units back reopens the path: a `stock` event with units left
   (an order cancelled or expired), a `sale` event (closed, changed); a read begun before
   such an event is thrown away (generation count). The hub's answers lag Redis by its
   pub/sub delay (about a millisecond); a hub's local `sold_out` is not stored in Redis,
   so a client retrying that key after units came back gets a fresh answer.

Memory: one string per key answered before the sell-out; above `max_keys` the hub keeps no
set for that sale and every buy goes to Redis, as before.

Sans-I/O: the hub does the reading (broker) and hands the results in.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _Sale:
    gen: int = 0  # bumped by anything that may bring units back
    loading: bool = False
    keys: set[str] | None = None  # answered keys, while known sold out
    limit: int = 0
    ends_at: int = 0  # ms; 0: no end


@dataclass
class SoldOutBook:
    """Per hub: the sales it knows are sold out, with the keys Redis answered by then."""

    max_keys: int = 500_000
    _rooms: dict[str, dict[str, _Sale]] = field(default_factory=dict)  # room -> sale -> what is known

    def answers(self, room: str, sale: str, field_: str, qty: int, now_ms: int) -> bool:
        """True: answer this buy `sold_out` here. `field_` names the (user, key) pair as
        the idempotency hash does (broker.base.buy_field)."""
        s = self._rooms.get(room, {}).get(sale)
        if s is None or s.keys is None:
            return False
        if field_ in s.keys or qty > s.limit or (s.ends_at and now_ms >= s.ends_at):
            return False
        return True

    def refused(self, room: str, sale: str) -> int | None:
        """Redis answered `sold_out`: the generation to read the sale under, or None when a
        read is under way or the set is already known."""
        if self.max_keys <= 0:
            return None  # the fast path is off
        s = self._rooms.setdefault(room, {}).setdefault(sale, _Sale())
        if s.loading or s.keys is not None:
            return None
        s.loading = True
        return s.gen

    def loaded(
        self, room: str, sale: str, gen: int, sold_out: bool, limit: int, ends_at: int, keys: set[str] | None
    ) -> bool:
        """The read begun under `gen` ended; True when the fast path is now on. `keys`
        None: too many to keep, or the read failed."""
        s = self._rooms.get(room, {}).get(sale)
        if s is None:
            return False
        s.loading = False
        if s.gen != gen or not sold_out or keys is None:
            return False
        s.keys, s.limit, s.ends_at = keys, limit, ends_at
        return True

    def reopen(self, room: str, sale: str) -> None:
        """Units may be back (a `stock` event with units left, a `sale` event)."""
        s = self._rooms.get(room, {}).get(sale)
        if s is not None:
            s.gen += 1
            s.keys = None

    def forget_room(self, room: str) -> None:
        """The hub no longer holds the room."""
        self._rooms.pop(room, None)

    def watching(self, room: str) -> bool:
        """Whether any sale of the room is known here (events need looking at)."""
        return room in self._rooms
