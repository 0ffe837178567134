"""Mint a development staff token.

python -m shared.security.devtoken --role clerk --district 310110 --subdistrict 310110001
"""

import argparse

from shared.security.staff_auth import Role, mint_dev_token
from shared.settings import ServiceSettings


def main() -> None:
    settings = ServiceSettings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", required=True, choices=[r.value for r in Role])
    parser.add_argument("--subject", default=None)
    parser.add_argument("--district")
    parser.add_argument("--subdistrict")
    parser.add_argument("--ttl", type=int, default=8 * 3600)
    parser.add_argument("--secret", default=settings.jwt_secret.get_secret_value())
    args = parser.parse_args()
    print(mint_dev_token(args.secret, args.subject or f"{args.role}-dev", args.role, args.district, args.subdistrict,
                         ttl_s=args.ttl, issuer=settings.jwt_issuer, audience=settings.jwt_audience))


if __name__ == "__main__":
    main()
