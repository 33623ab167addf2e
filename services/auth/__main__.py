from kit.cli import main
from services.auth.commands import reset_operator_password
from services.auth.server import build
from services.auth.settings import AuthSettings

main("auth", AuthSettings, build, {"reset-operator-password": reset_operator_password})
