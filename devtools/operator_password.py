"""`make reset-operator-password`: gives `make run`'s operator the password `make run` announces.

That is PLATFORM_ADMIN_PASSWORD when set, else the one in .data/platform-admin-password. The
database keeps the password the operator was created with, so the two can drift apart; this
runs the auth service's own `reset-operator-password` command on `make run`'s database, which
also ends the operator's sessions and records the reset in the audit trail.
"""

from __future__ import annotations

import os
import subprocess
import sys

from devtools.postgres import start_embedded, with_database
from devtools.run import DATA_DIR, DEFAULT_OPERATOR_EMAIL, operator_password
from devtools.stack import ROOT, python_path


def main() -> None:
    database_url = os.environ.get("DATABASE_URL")
    server = None
    if not database_url:
        if not (DATA_DIR / "postgres").exists():
            sys.exit("make reset-operator-password: no database yet; `make run` creates it and the operator")
        server, admin_url = start_embedded(DATA_DIR / "postgres")
        database_url = with_database(admin_url, "tenantry")
    password, source = operator_password()
    env = {
        **os.environ,
        "PYTHONPATH": python_path(),
        "DATABASE_URL": database_url,
        "PLATFORM_ADMIN_EMAIL": os.environ.get("PLATFORM_ADMIN_EMAIL") or DEFAULT_OPERATOR_EMAIL,
        "PLATFORM_ADMIN_PASSWORD": password,
    }
    try:
        print(f"Setting the operator's password to the one from {source}.", flush=True)
        result = subprocess.run([sys.executable, "-m", "services.auth", "reset-operator-password"], cwd=ROOT, env=env)
    finally:
        if server is not None:
            server.cleanup()
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
