"""Every Redis key and channel name, built in one place.

All keys of a room carry the room id as a hash tag (`{room}`), so on a Redis Cluster they
share one slot and a room's Lua scripts run on one node; with several standalone shards the
same room id picks the shard (sharding.py). Room ids are `[A-Za-z0-9_.:-]`, so they cannot
contain the braces that would break the tag.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "lr"


@dataclass(frozen=True, slots=True)
class RoomKeys:
    room: str
    meta: str  # HASH seq, epoch, likes, comments, peak, pinned (msgpack)
    hist: str  # STREAM of durable events, entry id "<seq>-0": resume after reconnect
    channel: str  # pub/sub channel carrying the room's events to every hub
    ref: str  # HASH user -> number of hubs holding a connection of that user (HLEN = online)
    hubs: str  # HASH hub id -> expiry ms: hubs that hold viewers of the room
    mutes: str  # HASH user -> muted until (ms, -1 forever)
    sales: str  # HASH <sale>:info (msgpack) | <sale>:stock | <sale>:status | <sale>:n (orders)
    orders: str  # HASH order id -> order JSON (status pending|confirmed|cancelled|expired)
    pending: str  # ZSET order id -> pay deadline ms: what the order reaper expires
    room_orders_stream: str  # the room's orders stream (Redis Cluster deployments)
    milestones: str  # HASH id -> msgpack {kind, every | value, reward, event, draw, fired}
    info: str = ""  # HASH title, description, created_at, created_by, updated_at: the room was created on purpose
    # draws: `open` -> the open (or closing) draw's id; <draw>:info (msgpack public map) |
    # :seed (hex) | :kw (normalised keyword) | :ends | :excl | :status (open|closing|closed)
    # | :claim ("<hub> <until ms>") | :result (msgpack)
    draws: str = ""
    entrants: str = ""  # ZSET (all scores 0, so in code point order) of the open draw's entrants
    names: str = ""  # HASH user -> display name, written when a user enters a draw
    won: str = ""  # SET of users who have won a draw in this room (exclude_winners)
    bans: str = ""  # HASH user -> banned until (ms, -1 forever): refused at the handshake
    words: str = ""  # HASH words (JSON list), action, contacts (0/1), ver: the room's word filter
    strikes: str = ""  # HASH user -> escalated mutes so far (the step on the mute ladder)
    reports: str = ""  # ZSET comment seq -> reports: reported comments, most reported first
    reported: str = ""  # HASH comment seq -> the comment's body (msgpack) as published
    # SET of the room's sale ids that may still take buys (not closed, not seen past ends_at):
    # what a join reads, so the welcome does not grow with every sale the room ever held
    sales_open: str = ""

    def report(self, seq: int) -> str:
        """HASH reporting user -> reason: one report per user per comment."""
        return f"{PREFIX}:{{{self.room}}}:report:{seq}"

    # live sessions: the live one's figures (HASH, see lua/lib_session.lua) and viewers
    # (HyperLogLog); live_end.lua renames both to session(<id>) / session_hll(<id>)
    live: str = ""
    live_hll: str = ""
    sessions: str = ""  # ZSET session id -> started_at ms: the room's sessions, kept or live

    def session(self, session: str) -> str:
        """HASH: an ended session's figures (expire after sessions.retention_days)."""
        return f"{PREFIX}:{{{self.room}}}:session:{session}"

    def session_hll(self, session: str) -> str:
        """HyperLogLog: an ended session's distinct viewers."""
        return f"{PREFIX}:{{{self.room}}}:session:{session}:hll"

    def draw_entrants(self, draw: str) -> str:
        """A closed draw's entrants: `entrants` (ZSET) renamed by the close (O(1)); for an
        `online` draw the claimant's sorted LIST (`online_pool`) renamed."""
        return f"{PREFIX}:{{{self.room}}}:entrants:{draw}"

    def online_pool(self, draw: str, hub_id: str) -> str:
        """LIST: the users present at an online draw's close, sorted, as one claimant read
        them (its own key, so a hub that took the claim over never mixes with it)."""
        return f"{PREFIX}:{{{self.room}}}:pool:{draw}:{hub_id}"

    def bought(self, sale: str) -> str:
        """HASH user -> units held (pending + confirmed) in one sale: the per-user limit."""
        return f"{PREFIX}:{{{self.room}}}:bought:{sale}"

    def idem(self, sale: str) -> str:
        """HASH idempotency field -> the first answer to a buy with that key."""
        return f"{PREFIX}:{{{self.room}}}:idem:{sale}"

    @property
    def like_flushes(self) -> str:
        """HASH hub id -> the id of its last likes flush counted (room_like.lua), with a TTL."""
        return f"{PREFIX}:{{{self.room}}}:lf"

    def op_key(self, op: str, user: str, key: str) -> str:
        """STRING: the first answer to `op` with a client's idempotency key (lib_idem.lua),
        with a TTL. The user's id is length-prefixed: no (user, key) pair reads as another."""
        return f"{PREFIX}:{{{self.room}}}:ik:{op}:{len(user)}:{user}{key}"

    def rate(self, user: str) -> str:
        """HASH t (tokens), s (stamp ms): one user's comment allowance in the room, all hubs."""
        return f"{PREFIX}:{{{self.room}}}:rate:{user}"

    def hub_users(self, hub_id: str) -> str:
        """SET of users one hub holds in the room: what is undone if that hub dies."""
        return f"{PREFIX}:{{{self.room}}}:hu:{hub_id}"


def room_keys(room: str) -> RoomKeys:
    t = f"{PREFIX}:{{{room}}}"
    return RoomKeys(
        room=room,
        meta=f"{t}:meta",
        hist=f"{t}:hist",
        channel=f"{t}:ch",
        ref=f"{t}:ref",
        hubs=f"{t}:hubs",
        mutes=f"{t}:mutes",
        sales=f"{t}:sales",
        orders=f"{t}:orders",
        pending=f"{t}:pending",
        room_orders_stream=f"{t}:orders:stream",
        milestones=f"{t}:milestones",
        info=f"{t}:room",
        draws=f"{t}:draws",
        entrants=f"{t}:entrants",
        names=f"{t}:names",
        won=f"{t}:won",
        bans=f"{t}:bans",
        words=f"{t}:words",
        strikes=f"{t}:strikes",
        reports=f"{t}:reports",
        reported=f"{t}:reported",
        live=f"{t}:live",
        live_hll=f"{t}:live:hll",
        sessions=f"{t}:sessions",
        sales_open=f"{t}:sales:open",
    )


# The shop backend's feed with standalone shards: one stream on each shard, read with a
# consumer group (XREADGROUP). A Redis Cluster cannot append to one stream from scripts of
# rooms in other slots, so there each room has its own stream (room_orders_stream).
SHARD_ORDERS_STREAM = f"{PREFIX}:orders"
# SCAN pattern of the rooms' orders streams on a cluster (`{` and `}` are not glob syntax)
ROOM_ORDERS_STREAMS = f"{PREFIX}:{{*}}:orders:stream"
# Before due-order indexing: SET of rooms that had a sale, per shard. No longer written; a
# reaper round moves what an older version left there into ORDERS_DUE, then deletes it.
SALE_ROOMS = f"{PREFIX}:{{sales}}:rooms"
# ZSET "<room> <sale>" -> next ms the order reaper looks at that room, per shard (cluster: one
# key): written before sale_create.lua (another slot on a cluster), so no order can be
# missed; kept while the sale may take buys or the room holds pending orders, scored by the
# earliest pay deadline. A round reads only the due entries: its cost follows due orders and
# open sales, never the rooms that ever sold.
ORDERS_DUE = f"{PREFIX}:{{sales}}:due"
# short lock so that one hub at a time runs a reaper round over a shard
REAPER_LOCK = f"{PREFIX}:{{sales}}:reaper"


# ZSET "<room> <draw>" -> ends_at ms, per shard (cluster: one key): what the draw closers
# poll. A room's script cannot write it on a cluster (another slot), so it is written before
# the draw_start script (and removed if that refuses): no draw can exist unindexed.
DRAWS_DUE = f"{PREFIX}:{{draws}}:due"

# ZSET room -> ms it was added, per shard (cluster: one key): rooms that may have a live
# session, what the idle closers poll. Written before live_start.lua (another slot on a
# cluster), dropped by a closer once the room has no session live.
SESSIONS_LIVE = f"{PREFIX}:{{sessions}}:live"


# ZSET room -> ms it was last seen becoming over (last viewer gone, sale closed, order
# settled (seen by the order reaper), draw closed, session ended), per shard (cluster: one
# key): what the room sweepers poll. A room still over room.ttl_s after its entry is
# deleted whole (room_drop.lua).
ROOMS_IDLE = f"{PREFIX}:{{rooms}}:idle"
# short lock so that one hub at a time sweeps a shard
SWEEP_LOCK = f"{PREFIX}:{{rooms}}:sweeper"


def probe_prefix(hub_id: str) -> str:
    """Pub/sub channels only this hub subscribes: its listeners' liveness probes (no room)."""
    return f"{PREFIX}:probe:{hub_id}"


def room_of_channel(channel: bytes | str) -> str:
    """The room id inside a channel name built by room_keys()."""
    if isinstance(channel, bytes):
        channel = channel.decode()
    start = channel.index("{") + 1
    return channel[start : channel.index("}", start)]
