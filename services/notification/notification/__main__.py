from notification.bootstrap import MIGRATIONS, create_app
from notification.config import NotificationSettings
from shared.service import serve

if __name__ == "__main__":
    serve(create_app, NotificationSettings(), MIGRATIONS)
