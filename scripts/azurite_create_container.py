#!/usr/bin/env python3
"""Create (or, with --check, look up) a blob container on a local Azurite.

object_store cannot create Azure containers, so the test setup does it with one SharedKey-signed
"Create Container" request, using Azurite's well-known development account. Standard library only,
so it runs with any python3.

  azurite_create_container.py [--endpoint URL] [--container NAME]          create; exit 0 on 201/409
  azurite_create_container.py --check [--endpoint URL] [--container NAME]  exit 0 if it exists (200)

Only loopback endpoints are accepted: the key is Azurite's published development key, and this
script has no business talking to anything else.
"""

import argparse
import base64
import email.utils
import hashlib
import hmac
import ipaddress
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

# Azurite's well-known development account and key, published in Microsoft's Azurite docs.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
API_VERSION = "2021-08-06"


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def string_to_sign(method, url, headers):
    """SharedKey string-to-sign for the Blob service (versions 2015-02-21 and later)."""
    parsed = urllib.parse.urlsplit(url)
    lower = {k.lower(): v for k, v in headers.items()}
    content_length = lower.get("content-length", "")
    if content_length == "0":
        content_length = ""  # a zero length is signed as empty since 2015-02-21
    standard = [
        method,
        lower.get("content-encoding", ""),
        lower.get("content-language", ""),
        content_length,
        lower.get("content-md5", ""),
        lower.get("content-type", ""),
        "",  # Date: we send x-ms-date instead
        lower.get("if-modified-since", ""),
        lower.get("if-match", ""),
        lower.get("if-none-match", ""),
        lower.get("if-unmodified-since", ""),
        lower.get("range", ""),
    ]
    canonical_headers = "".join(
        f"{name}:{lower[name].strip()}\n" for name in sorted(lower) if name.startswith("x-ms-")
    )
    # Path-style (emulator) URLs already start with /devstoreaccount1, and the account is
    # prefixed once more: /devstoreaccount1/devstoreaccount1/container.
    resource = f"/{ACCOUNT}{parsed.path}"
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    for name in sorted(query, key=str.lower):
        values = ",".join(sorted(query[name]))
        resource += f"\n{name.lower()}:{values}"
    return "\n".join(standard) + "\n" + canonical_headers + resource


def signed_request(method, url):
    headers = {
        "x-ms-date": email.utils.formatdate(usegmt=True),
        "x-ms-version": API_VERSION,
        "Content-Length": "0",
    }
    to_sign = string_to_sign(method, url, headers)
    digest = hmac.new(
        base64.b64decode(ACCOUNT_KEY), to_sign.encode("utf-8"), hashlib.sha256
    ).digest()
    headers["Authorization"] = f"SharedKey {ACCOUNT}:{base64.b64encode(digest).decode()}"
    # No body (data=None): with a body urllib would add a Content-Type that is not signed.
    request = urllib.request.Request(url, headers=headers, method=method)
    # No proxy: loopback traffic must stay on loopback even if *_proxy is set.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def main():
    port = os.environ.get("OBJECTSTOREX_AZURE_PORT", "10000")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=f"http://127.0.0.1:{port}/{ACCOUNT}")
    parser.add_argument("--container", default="objectstorex-test")
    parser.add_argument("--check", action="store_true", help="only check that it exists")
    args = parser.parse_args()

    host = urllib.parse.urlsplit(args.endpoint).hostname or ""
    if not is_loopback(host):
        sys.exit(f"azurite_create_container.py: refusing non-loopback endpoint {args.endpoint}")

    url = f"{args.endpoint.rstrip('/')}/{urllib.parse.quote(args.container)}?restype=container"
    try:
        if args.check:
            status, body = signed_request("GET", url)
            ok = status == 200
        else:
            status, body = signed_request("PUT", url)
            # 409 is also ContainerBeingDeleted, which is not a success.
            ok = status == 201 or (status == 409 and "ContainerAlreadyExists" in body)
    except OSError as error:
        sys.exit(f"azurite_create_container.py: {url}: {error}")

    what = "exists" if args.check else ("created" if status == 201 else "already exists")
    if ok:
        print(f"container {args.container}: {what} (HTTP {status})")
        return 0
    print(f"container {args.container}: HTTP {status}\n{body}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
