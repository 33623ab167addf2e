from kit.cli import main
from services.tenants.server import build
from services.tenants.settings import TenantsSettings

main("tenants", TenantsSettings, build)
