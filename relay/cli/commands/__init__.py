"""One module per admin command group; each parses options, calls the relay and renders."""
