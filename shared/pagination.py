"""Paging parameters the list endpoints share."""

from typing import Annotated

from fastapi import Query

MAX_OFFSET = 2**31 - 1
"""The database binds OFFSET as a 32-bit integer: a larger one is refused as input, not failed on in SQL."""

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many matches to skip.")]
