"""The typed runtime the routes reach intake through (never `request.app.state` by hand)."""

from typing import Annotated

from fastapi import Depends, Request

from intake.dependencies import IntakeDeps
from shared.service import Runtime


def _runtime(request: Request) -> Runtime[IntakeDeps]:
    runtime: Runtime[IntakeDeps] = request.app.state.runtime
    return runtime


IntakeRuntime = Annotated[Runtime[IntakeDeps], Depends(_runtime)]
