"""Fixtures of the security tests: one scratch database for all of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import create_database, drop_database


@pytest.fixture(scope="package")
def security_db() -> Iterator[str]:
    """A database of its own for the security tests, dropped at the end."""
    url = create_database()
    yield url
    drop_database(url)
