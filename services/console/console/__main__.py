from console.app import create_app
from console.config import ConsoleSettings
from shared.http_server import run_http

if __name__ == "__main__":
    settings = ConsoleSettings()
    run_http(create_app(settings), host=settings.http_host, port=settings.http_port)
