import uvicorn

from simulators.bank.app import create_app
from simulators.bank.settings import BankSettings

if __name__ == "__main__":
    settings = BankSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)
