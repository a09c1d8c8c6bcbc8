"""Where the store is: the ``paths:`` settings, ``Paths.store_location()`` and ``open_store``."""

from __future__ import annotations

import pytest

from qflow.config.paths import Paths, StoreLocation
from qflow.config.schema import PathsSettings
from qflow.errors import ConfigError
from qflow.store.local import Store
from qflow.store.location import open_store


@pytest.mark.parametrize(("setting", "folder"), [
    (None, ".qflow/store"),
    ("shared/store", "shared/store"),
    ("file://{root}/elsewhere", "elsewhere"),
    ("{root}/absolute", "absolute"),
])
def test_a_local_store(tmp_path, setting, folder):
    paths = Paths(tmp_path, store_url=setting and setting.format(root=tmp_path))
    location = paths.store_location()
    assert location.is_local and location.cache_dir is None
    assert paths.store == tmp_path / folder == location.path
    store = open_store(location)
    assert isinstance(store, Store) and store.root == tmp_path / folder
    assert open_store(paths.store_location()) is not store  # a fresh one verifies again


def test_a_store_at_a_url_from_the_settings(tmp_path):
    settings = PathsSettings(data="var", store="s3://bucket/team",
                             storage_options={"anon": False}, trust_pickles=True)
    paths = Paths.from_settings(tmp_path, settings)
    location = paths.store_location()
    assert location == StoreLocation.of("s3://bucket/team", {"anon": False}, trust_pickles=True,
                                        cache_dir=tmp_path / "var/cache" / location.digest)
    assert not location.is_local and location.options == {"anon": False}
    with pytest.raises(ConfigError, match="not a local folder"):
        paths.store  # noqa: B018


def test_the_old_constructors_still_work(tmp_path):
    assert Paths(tmp_path).store == tmp_path / ".qflow/store"
    assert Paths(tmp_path, "data").store == tmp_path / "data/store"
    assert Paths.from_settings(tmp_path, PathsSettings()).store_location().url == \
        str(tmp_path / ".qflow/store")
