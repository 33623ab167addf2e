from kit.cli import main
from services.audit.server import build
from services.audit.settings import AuditSettings

main("audit", AuditSettings, build)
