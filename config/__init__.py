"""Settings for the relay and its worker (environment variables prefixed ``RELAY_``)."""

from config.settings import RetrySettings, Settings, get_settings

__all__ = ["RetrySettings", "Settings", "get_settings"]
