"""For hospital integrators: print the signature headers of a request.

python -m shared.security.sign_request --hospital-id H001 --secret S --method POST \
    --path /v1/settlements --body-file body.json [--url http://127.0.0.1:8001]
"""

import argparse
import shlex
from pathlib import Path

from shared.security.hospital_signing import signed_headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hospital-id", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--method", default="POST")
    parser.add_argument("--path", required=True)
    parser.add_argument("--body-file", type=Path)
    parser.add_argument("--url", default="http://127.0.0.1:8001")
    args = parser.parse_args()
    body = args.body_file.read_bytes() if args.body_file else b""
    headers = signed_headers(args.hospital_id, args.secret, args.method, args.path, body)
    for name, value in headers.items():
        print(f"{name}: {value}")
    parts = ["curl", "-sS", "-X", args.method.upper(), f"{args.url}{args.path}",
             "-H", "Content-Type: application/json"]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    if args.body_file:
        parts += ["--data-binary", f"@{args.body_file}"]
    print(shlex.join(parts))


if __name__ == "__main__":
    main()
