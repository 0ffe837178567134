"""Mint a development token.

python -m shared.security.devtoken --role clerk --district 310110 --subdistrict 310110001
python -m shared.security.devtoken --role resident --national-id 310110198001011236
"""

import argparse

from shared.security.crypto import person_ref
from shared.security.national_id import validate_national_id
from shared.security.roles import TOKEN_ROLES, Role
from shared.security.staff_auth import mint_dev_token
from shared.settings import ServiceSettings


def main() -> None:
    settings = ServiceSettings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", required=True, choices=sorted(TOKEN_ROLES))
    parser.add_argument("--subject", default=None)
    parser.add_argument("--national-id", help="resident: the subject becomes this person's person_ref")
    parser.add_argument("--district")
    parser.add_argument("--subdistrict")
    parser.add_argument("--ttl", type=int, default=8 * 3600)
    parser.add_argument("--secret", default=settings.jwt_secret.get_secret_value())
    args = parser.parse_args()
    subject = args.subject
    if args.role == Role.resident.value:
        if not args.national_id:
            parser.error("a resident token needs --national-id")
        subject = person_ref(settings.person_ref_pepper.get_secret_value().encode(),
                             validate_national_id(args.national_id))
    print(mint_dev_token(args.secret, subject or f"{args.role}-dev", args.role, args.district, args.subdistrict,
                         ttl_s=args.ttl, issuer=settings.jwt_issuer, audience=settings.jwt_audience))


if __name__ == "__main__":
    main()
