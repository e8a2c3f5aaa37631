#!/usr/bin/env python3
"""Print the number of in-progress multipart uploads in an S3 bucket, optionally under a prefix.

  s3_list_multipart.py ENDPOINT BUCKET [PREFIX]

Run it with the test-server venv's python ($OBJECTSTOREX_TEST_PYTHON), which has boto3. The tests
use it to prove that an aborted or failed upload leaves nothing behind on the server. Credentials
are the test server's dummy "test"/"test", region us-east-1. Prints one integer.
"""

import os
import sys

import boto3
from botocore.config import Config


def main(argv):
    if len(argv) not in (3, 4):
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    endpoint, bucket = argv[1], argv[2]
    prefix = argv[3] if len(argv) == 4 else ""

    # Loopback traffic must never go through a proxy that the environment may name.
    for var in ("NO_PROXY", "no_proxy"):
        os.environ[var] = ",".join(filter(None, [os.environ.get(var), "127.0.0.1", "localhost"]))

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        # Path-style: the bucket is not a DNS name on 127.0.0.1. Few retries: fail fast.
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )
    paginator = client.get_paginator("list_multipart_uploads")
    count = 0
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        count += len(page.get("Uploads", []))
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
