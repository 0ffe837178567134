from shared.migrations import run_env
from shared.security.read_audit import READ_AUDIT_TABLE_NAME

run_env(append_only=[READ_AUDIT_TABLE_NAME])
