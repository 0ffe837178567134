from shared.migrations import run_env

# The audit trail is append-only: the runtime role may insert and read it, never change it (a trigger
# refuses changes from any role as well).
run_env(append_only=["case_audit"])
