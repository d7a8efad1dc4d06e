"""--sink import-s3's pieces that need no service: where the files go, and the refusals before any read."""

from __future__ import annotations

import pytest

from jobs.sinks.import_s3 import S3Prefix
from transforms.errors import SinkError


@pytest.mark.parametrize("uri, bucket, prefix", [
    ("s3://carve/imports/", "carve", "imports/"),
    ("s3://carve/imports", "carve", "imports/"),
    ("s3://carve/a/b//", "carve", "a/b/"),
    ("s3://carve", "carve", ""),
    ("s3://carve/", "carve", ""),
])
def test_an_import_prefix_is_a_bucket_and_a_folder(uri, bucket, prefix):
    location = S3Prefix.parse(uri)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert str(location) == f"s3://{bucket}/{prefix}"


@pytest.mark.parametrize("uri", ["carve/imports", "s3:///imports/", "/tmp/imports", "https://carve.s3.amazonaws.com/x"])
def test_anything_else_is_refused_with_the_form_to_use(uri):
    with pytest.raises(SinkError, match="give s3://BUCKET/PREFIX/"):
        S3Prefix.parse(uri)
