"""The demo's S3 edits against the local S3 server, with boto3 (moto's own
dependency): `put BUCKET KEY` writes a small object, `suspend-versioning
BUCKET` turns versioning off behind sluice's back."""
import os
import sys

import boto3

s3 = boto3.client("s3", endpoint_url=os.environ["SLUICE_S3_ENDPOINT"], region_name="us-east-1")
command, bucket, *rest = sys.argv[1:]
if command == "put":
    s3.put_object(Bucket=bucket, Key=rest[0], Body=b"backup")
elif command == "suspend-versioning":
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
else:
    sys.exit(f"unknown command {command}")
