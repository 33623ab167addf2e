from kit.migrations import run_env
from services.auth.models import SCHEMA

run_env(SCHEMA)
