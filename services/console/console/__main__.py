import uvicorn

from console.app import create_app
from console.config import ConsoleSettings

if __name__ == "__main__":
    settings = ConsoleSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None,
                access_log=False)
