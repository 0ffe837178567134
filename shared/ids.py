"""New ids for rows and events (docs/decisions/0048).

`new_id()` is a UUID version 7 (RFC 9562): 48 bits of Unix milliseconds first, then a counter that keeps the ids
of one process in order within a millisecond, then random bits. Ids made one after another land next to each
other in a B-tree (the inbox's primary key, every table keyed by one), so an insert touches the index's right
edge instead of a random page: fewer dirty pages, fewer full-page images after each checkpoint.

It reveals when it was made and is partly predictable from a neighbour, so ids that leave for people outside
(a settlement's id that hospitals hold, a consent's id) stay `uuid.uuid4()`, and a pseudonym is never one.
uuid-utils (Rust, the RFC's monotonic counter) makes them: the standard library has no uuid7 before 3.14.
"""

from uuid import UUID

from uuid_utils.compat import uuid7


def new_id() -> UUID:
    """A time-ordered id (a standard `uuid.UUID`, version 7) for an event or an internal row."""
    return uuid7()
