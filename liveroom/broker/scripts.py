"""The Lua scripts of liveroom/lua/, loaded once per process and called by SHA.

redis-py's AsyncScript sends EVALSHA and, on NOSCRIPT (a restarted or failed-over
Redis), loads the script and retries: callers never see the difference. A script whose
header says `-- include: lib_publish.lua` gets that file prepended, so shared Lua lives
in one file.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript

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


class Scripts:
    """name -> AsyncScript; `client=` picks the shard at call time."""

    def __init__(self, registrar: Any) -> None:
        self._scripts: dict[str, AsyncScript] = {n: registrar.register_script(source(n)) for n in script_names()}

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]
