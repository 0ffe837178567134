from approval.bootstrap import MIGRATIONS, create_app
from approval.config import ApprovalSettings
from shared.service import serve

if __name__ == "__main__":
    serve(create_app, ApprovalSettings(), MIGRATIONS)
