"""models.fetch with a GGUF already in the cache: checked against its SHA-256, never downloaded again
when it is the official file (a machine without a package registry gets it copied in)."""

import hashlib

import pytest

from completer.engine import models


def _entry(data: bytes) -> models.CatalogueEntry:
    return models.CatalogueEntry(name="tiny", filename="tiny.gguf", size=len(data),
                                 sha256=hashlib.sha256(data).hexdigest(), package="no-such-package-part",
                                 version="0", parts=1)


@pytest.mark.parametrize("placed, marker_after, downloads", [
    (b"official bytes", True, False),   # the official file without its marker: verified in place
    (b"tampered bytes", False, True),   # same size, other bytes: removed, then a download is tried
])
def test_fetch_verifies_a_gguf_placed_in_the_cache(tmp_path, monkeypatch, placed, marker_after, downloads):
    monkeypatch.setenv("COMPLETER_CACHE", str(tmp_path))
    entry = _entry(b"official bytes")
    gguf = tmp_path / "gguf" / entry.filename
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(placed)
    tried = []

    def no_network(*args, **kwargs):
        tried.append(args)
        raise models.ModelError("download attempted")

    monkeypatch.setattr(models.subprocess, "run", no_network)
    if downloads:
        with pytest.raises(models.ModelError, match="download attempted"):
            models.fetch(entry)
        assert not gguf.exists()
    else:
        assert models.fetch(entry) == gguf
    assert bool(tried) == downloads
    assert gguf.with_suffix(".verified").exists() == marker_after
