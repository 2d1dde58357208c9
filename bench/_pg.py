"""Shared by the server benchmarks: throw-away PostgreSQL databases and the flask CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def make_database(server: str, name: str) -> str:
    """Create a database on ``server`` (a URL without a database) and return its URL."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask(env: dict, *args: str) -> str:
    """Run `flask --app app ARGS` with ``env``; exit with its stderr when it fails."""
    proc = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "app", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"flask {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout
