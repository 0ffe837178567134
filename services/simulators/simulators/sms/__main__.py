import uvicorn

from simulators.sms.app import create_app
from simulators.sms.settings import SmsSettings

if __name__ == "__main__":
    settings = SmsSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)
