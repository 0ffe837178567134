"""The typed runtime the routes reach notification through (never `request.app.state` by hand)."""

from typing import Annotated

from fastapi import Depends, Request

from notification.dependencies import NotificationDeps
from shared.service import Runtime


def _runtime(request: Request) -> Runtime[NotificationDeps]:
    runtime: Runtime[NotificationDeps] = request.app.state.runtime
    return runtime


NotificationRuntime = Annotated[Runtime[NotificationDeps], Depends(_runtime)]
