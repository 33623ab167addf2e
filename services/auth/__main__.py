from kit.cli import main
from services.auth.server import build
from services.auth.settings import AuthSettings

main("auth", AuthSettings, build)
