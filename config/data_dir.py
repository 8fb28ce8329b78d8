"""Where `relay dev` keeps its Redis files and admin token unless ``RELAY_DATA_DIR`` says.

Its own module, free of pydantic: the admin CLI reads it to find that token.
"""

from pathlib import Path

DEFAULT_DATA_DIR = Path(".relay-data")
