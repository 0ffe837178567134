from eligibility.bootstrap import MIGRATIONS, create_app
from eligibility.config import EligibilitySettings
from shared.service import serve

if __name__ == "__main__":
    serve(create_app, EligibilitySettings(), MIGRATIONS)
