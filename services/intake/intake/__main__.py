from intake.bootstrap import MIGRATIONS, create_app
from intake.config import IntakeSettings
from shared.service import serve

if __name__ == "__main__":
    serve(create_app, IntakeSettings(), MIGRATIONS)
