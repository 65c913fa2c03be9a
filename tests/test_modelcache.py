"""botocore's parsed models kept between runs (store/modelcache.py): a cached load gives
exactly what botocore's own loading gives, and any doubt means botocore's loading."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.config import Config

from s3stow.store import modelcache
from s3stow.store.modelcache import ModelCache, cache_models, use_directory


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "cache"
    use_directory(root)
    yield root
    use_directory(None)


def _session(*, cached: bool) -> Any:
    session = botocore.session.get_session()
    if cached:
        cache_models(session)
    return session


def _client(session: Any) -> Any:
    return session.create_client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="eu-west-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(retries={"mode": "standard"}),
    )


def _entries(root: Path) -> list[Path]:
    return sorted(root.glob("botocore-*/*.json"))


def test_off_unless_asked_for() -> None:
    use_directory(None)
    session = _session(cached=True)
    assert not isinstance(session.get_component("data_loader").file_loader, ModelCache)


def test_a_cached_load_is_botocores_own(cache_dir: Path) -> None:
    plain = _session(cached=False).get_component("data_loader")
    for _ in range(2):  # the first run writes the entries, the second reads them
        loader = _session(cached=True).get_component("data_loader")
        assert isinstance(loader.file_loader, ModelCache)
        for type_name in ("service-2", "endpoint-rule-set-1"):
            assert loader.list_available_services(type_name) == plain.list_available_services(
                type_name
            )
            ours = loader.load_service_model("s3", type_name)
            theirs = plain.load_service_model("s3", type_name)
            # the same items in the same order (json.dumps keeps the order)
            assert json.dumps(ours) == json.dumps(theirs)
        assert json.dumps(loader.load_data("endpoints")) == json.dumps(plain.load_data("endpoints"))
    assert len(_entries(cache_dir)) >= 5


def test_a_client_from_the_cache_prepares_botocores_request(cache_dir: Path) -> None:
    _client(_session(cached=True))  # fills the cache
    requests = []
    for cached in (False, True):
        client = _client(_session(cached=cached))
        client.meta.events.register("before-send.s3", _stop)
        with pytest.raises(_Sent) as stopped:
            client.put_object(Bucket="b", Key="k/a b", Body=b"x", Metadata={"m": "v"})
        request = stopped.value.request
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _VARYING}
        requests.append((request.method, request.url, headers))
    assert requests[0] == requests[1]


_VARYING = {"authorization", "x-amz-date", "amz-sdk-invocation-id", "user-agent"}


class _Sent(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("sent")
        self.request = request


def _stop(request: Any, **_: Any) -> None:
    raise _Sent(request)


def test_a_changed_file_is_loaded_again(cache_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models" / "toy" / "2020-01-01"
    models.mkdir(parents=True)
    model = models / "service-2.json"
    model.write_text('{"version": 1}')
    inner = botocore.session.get_session().get_component("data_loader").file_loader
    cache = ModelCache(inner, cache_dir, version="botocore-test", extensions=(".json",))
    path = str(models / "service-2")
    assert cache.load_file(path) == {"version": 1}
    assert cache.load_file(path) == {"version": 1}  # from the cache
    model.write_text('{"version": 22}')
    os.utime(model, ns=(1, 1))
    assert cache.load_file(path) == {"version": 22}


def test_a_corrupt_or_foreign_entry_means_botocores_loading(
    cache_dir: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models" / "toy" / "2020-01-01"
    models.mkdir(parents=True)
    (models / "service-2.json").write_text('{"version": 1}')
    inner = botocore.session.get_session().get_component("data_loader").file_loader
    cache = ModelCache(inner, cache_dir, version="botocore-test", extensions=(".json",))
    path = str(models / "service-2")
    cache.load_file(path)
    (entry,) = _entries(cache_dir)
    entry.write_bytes(entry.read_bytes()[:-3])  # cut short
    assert cache.load_file(path) == {"version": 1}
    entry.write_bytes(b"something else entirely")
    assert cache.load_file(path) == {"version": 1}


def test_an_unwritable_cache_is_no_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    use_directory(blocked / "cache")
    try:
        client = _client(_session(cached=True))
        assert client.meta.service_model.service_name == "s3"
    finally:
        use_directory(None)


def test_other_botocore_versions_are_removed_once_stale(cache_dir: Path) -> None:
    old = cache_dir / "botocore-0.0.1-py30"
    recent = cache_dir / "botocore-0.0.2-py30"
    for folder in (old, recent):
        folder.mkdir(parents=True)
        (folder / "x.json").write_text("{}")
    os.utime(old, (1, 1))
    _client(_session(cached=True))
    assert not old.exists()
    assert recent.exists()
    assert modelcache.STALE > 86400
