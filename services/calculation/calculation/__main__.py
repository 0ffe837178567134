from calculation.bootstrap import MIGRATIONS, create_app
from calculation.config import CalculationSettings
from shared.service import serve

if __name__ == "__main__":
    serve(create_app, CalculationSettings(), MIGRATIONS)
