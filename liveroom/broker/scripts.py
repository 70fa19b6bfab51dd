"""The Lua scripts of liveroom/lua/, loaded once per process and called by SHA.

Each call sends EVALSHA; on NOSCRIPT (a restarted or failed-over Redis) the script is
loaded on that server and the call retried, so callers never see the difference. A
script whose header says `-- include: lib_publish.lua` gets that file prepended, so
shared Lua lives in one file.

We call EVALSHA ourselves rather than through redis-py's AsyncScript: profiling the flash
sale benchmark (py-spy, bench/RESULTS.md) showed AsyncScript's per-call isinstance check
against a typing.Protocol and its wrappers at over a tenth of the hub's busy time.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

_INCLUDE = re.compile(r"^-- include: ([a-z_]+\.lua)$", re.M)


def source(name: str) -> str:
    files = resources.files("liveroom") / "lua"
    text = (files / f"{name}.lua").read_text()
    parts = [(files / inc).read_text() for inc in _INCLUDE.findall(text)]
    return "\n".join([*parts, text])


def script_names() -> list[str]:
    files = resources.files("liveroom") / "lua"
    return sorted(
        p.name[:-4] for p in files.iterdir() if p.name.endswith(".lua") and not p.name.startswith("lib_")
    )


class Script:
    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = source(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            if isinstance(client, Redis):
                return await _evalsha_direct(client, self.sha, keys, args)
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args, keys=keys)
        except NoScriptError:
            # SCRIPT LOAD on the server that will run it: the first key's node on a cluster
            get_node = getattr(client, "get_node_from_key", None)
            if get_node is not None:
                await client.execute_command("SCRIPT LOAD", self.source, target_nodes=get_node(keys[0]))
            else:
                await client.execute_command("SCRIPT LOAD", self.source)
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args, keys=keys)


async def _evalsha_direct(client: Redis, sha: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA on a pooled connection, without execute_command's wrappers.

    redis-py 8's execute_command inspects its arguments for deprecations and runs a retry
    wrapper on every call: a third of the hub's busy time in the flash-sale profile. We
    send and read ourselves; a connection interrupted mid-command (timeout, cancel) is
    dropped, never returned to the pool with an unread reply on it.
    """
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        await conn.send_command("EVALSHA", sha, len(keys), *keys, *args)
        return await conn.read_response()
    except ResponseError:
        raise  # the reply was read whole: the connection is fine
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)


class Scripts:
    """name -> Script, for every .lua file of the package."""

    def __init__(self) -> None:
        self._scripts = {n: Script(n) for n in script_names()}

    def __getitem__(self, name: str) -> Script:
        return self._scripts[name]
