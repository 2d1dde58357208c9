"""CLI command modules; each defines ``commands``, a list of click commands."""
