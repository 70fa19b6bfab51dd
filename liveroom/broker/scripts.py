"""The Lua scripts of liveroom/lua/, loaded once per process and called by SHA.

Each call sends EVALSHA; on NOSCRIPT (a restarted or failed-over Redis) the script is
loaded on that server and the call retried, so callers never see the difference. A
script whose header says `-- include: lib_publish.lua` gets that file prepended, so
shared Lua lives in one file.

We call EVALSHA ourselves rather than through redis-py's AsyncScript: profiling the flash
sale benchmark (py-spy, bench/RESULTS.md) showed AsyncScript's per-call isinstance check
against a typing.Protocol and its wrappers at over a tenth of the hub's busy time. On
standalone shards the calls go through the shard's auto-pipeline (pipeline.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from liveroom.broker.pipeline import AutoPipeline

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

    async def via(self, pipe: AutoPipeline, keys: list[str], args: list[Any], replicas: int = 0, wait_ms: int = 0) -> Any:
        """On a standalone shard: EVALSHA through the shard's auto-pipeline (`replicas`:
        answered once that many replicas have its writes, or wait_ms passed)."""
        try:
            return await pipe.call("EVALSHA", self.sha, len(keys), *keys, *args, replicas=replicas, wait_ms=wait_ms)
        except NoScriptError:  # the shard restarted or SCRIPT FLUSH: load once, go on
            await pipe.call("SCRIPT", "LOAD", self.source)
            return await pipe.call("EVALSHA", self.sha, len(keys), *keys, *args, replicas=replicas, wait_ms=wait_ms)

    async def __call__(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        """On a Redis Cluster (or any client): EVALSHA routed by the first key."""
        try:
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args, keys=keys)
        except NoScriptError:
            await self.load(client)
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args, keys=keys)

    async def load(self, client: Any) -> None:
        """SCRIPT LOAD where the call may run. On a cluster that is every master: the cluster
        client follows ASK (a slot migrating) and MOVED (a failover) by itself and raises the
        redirect target's NOSCRIPT as a plain NoScriptError, which names no node, so loading
        on the slot's owner in our map would leave the target without it."""
        primaries = getattr(client, "get_primaries", None)
        if primaries is None:
            await client.execute_command("SCRIPT LOAD", self.source)
            return
        results = await asyncio.gather(
            *(client.execute_command("SCRIPT LOAD", self.source, target_nodes=n) for n in primaries()),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == len(results) and errors:
            raise errors[0]  # no master took it: say why (a dead one alone is not a reason)


class Scripts:
    """name -> Script, for every .lua file of the package."""

    def __init__(self) -> None:
        self._scripts = {n: Script(n) for n in script_names()}

    def __getitem__(self, name: str) -> Script:
        return self._scripts[name]
