from kit.migrations import run_env
from services.audit.models import SCHEMA

run_env(SCHEMA)
