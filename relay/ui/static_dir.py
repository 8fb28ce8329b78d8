"""Where the dashboard's assets live (package data, vendored: nothing comes from a CDN)."""

from pathlib import Path

STATIC = Path(__file__).with_name("static")
