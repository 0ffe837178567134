from shared.migrations import run_env
from shared.security.read_audit import READ_AUDIT_TABLE_NAME

# The audit trails are append-only: the runtime role may insert and read them, never change them (a trigger
# refuses changes from any role as well).
run_env(append_only=["case_audit", READ_AUDIT_TABLE_NAME])
