"""Reading from a real S3 endpoint on 127.0.0.1 (moto server) through the same code path."""

from __future__ import annotations

import numpy as np
import pytest
import s3fs

from raysurvey.io import ReadErrorReason, SpectrumReadError, read_spectrum
from raysurvey.io.examples import all_examples


def test_every_layout_reads_from_s3_like_from_disk(s3_bucket: str, tmp_path) -> None:
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    examples = all_examples()
    for example in examples:
        fs.pipe(f"{s3_bucket}/release/{example.name}", example.data)
    for example in examples:
        uri = f"{s3_bucket}/release/{example.name}"
        remote = read_spectrum(uri)
        local_path = tmp_path / example.name
        local_path.write_bytes(example.data)
        local = read_spectrum(str(local_path))
        assert remote.meta["uri"] == uri
        assert remote.meta["layout"] == example.layout
        np.testing.assert_array_equal(remote.flux, local.flux)
        np.testing.assert_array_equal(remote.wavelength, local.wavelength)
        assert {k: v for k, v in remote.meta.items() if k != "uri"} == {
            k: v for k, v in local.meta.items() if k != "uri"
        }


def test_missing_s3_object_is_not_found(s3_bucket: str) -> None:
    uri = f"{s3_bucket}/absent/spec.fits"
    with pytest.raises(SpectrumReadError) as info:
        read_spectrum(uri)
    assert info.value.reason is ReadErrorReason.NOT_FOUND and info.value.uri == uri


def test_missing_bucket_is_a_typed_error(s3_endpoint: str) -> None:
    with pytest.raises(SpectrumReadError) as info:
        read_spectrum("s3://no-such-bucket-anywhere/spec.fits")
    assert info.value.reason in (ReadErrorReason.NOT_FOUND, ReadErrorReason.IO_ERROR)
