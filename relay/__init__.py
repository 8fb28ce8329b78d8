"""Webhook relay: acknowledge at once, keep every accepted event, deliver it with retries."""
