"""Pure domain rules and nouns: no I/O, no Redis, HTTP client, queue or web framework."""
