"""The ARQ worker: delivery jobs and the recovery cron."""
