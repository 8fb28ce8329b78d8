"""Settings for the relay and its worker (environment variables prefixed ``RELAY_``).

``config.Settings`` and friends load on first use: the admin CLI imports
:mod:`config.data_dir` and must not pay for pydantic-settings and the storage layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.settings import RetrySettings, Settings, get_settings

__all__ = ["RetrySettings", "Settings", "get_settings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from config import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'config' has no attribute {name!r}")
