"""HTTP routes: thin transport over the relay's domain and store."""
