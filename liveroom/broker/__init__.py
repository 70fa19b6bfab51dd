"""Redis as the only shared state: keys, sharding, Lua scripts, pub/sub listeners."""
