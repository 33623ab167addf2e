from kit.migrations import run_env
from services.tenants.models import SCHEMA

run_env(SCHEMA)
