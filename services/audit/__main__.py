import sys

from kit.cli import main
from services.audit.archive import commands, verify_command
from services.audit.server import build
from services.audit.settings import AuditSettings

if sys.argv[1:2] == ["verify-export"]:
    # Offline: needs AUDIT_CHAIN_KEY alone, not the service's settings or its database.
    raise SystemExit(verify_command.main(sys.argv[2:]))
main("audit", AuditSettings, build, commands.COMMANDS)
