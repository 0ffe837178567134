from shared.http_server import run_http
from simulators.sms.app import create_app
from simulators.sms.settings import SmsSettings

if __name__ == "__main__":
    settings = SmsSettings()
    run_http(create_app(settings), host=settings.host, port=settings.port)
