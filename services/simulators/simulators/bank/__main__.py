from shared.http_server import run_http
from simulators.bank.app import create_app
from simulators.bank.settings import BankSettings

if __name__ == "__main__":
    settings = BankSettings()
    run_http(create_app(settings), host=settings.host, port=settings.port)
