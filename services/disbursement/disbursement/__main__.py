from disbursement.bootstrap import MIGRATIONS, create_app
from disbursement.config import DisbursementSettings
from shared.service import serve

if __name__ == "__main__":
    serve(create_app, DisbursementSettings(), MIGRATIONS)
