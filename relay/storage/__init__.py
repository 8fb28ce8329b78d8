"""Redis persistence: every key, hash field and Lua script, one module per aggregate."""
