import pytest
from pydantic import BaseModel

from agval.config import BackendConfig, LookupConfig, load_study_file
from agval.errors import ConfigError


class _Study(BaseModel):
    study: dict
    backend: BackendConfig = BackendConfig()
    lookup: LookupConfig = LookupConfig()


def test_study_file_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "s.toml").write_text('[study]\nname="x"\ntable="data/q.csv"\ncounts=["a.txt", "/abs/b.txt"]\n'
                                     '[backend]\nkind="standin"\n')
    s = load_study_file(tmp_path / "s.toml", _Study)
    assert s.study["table"] == str((tmp_path / "data/q.csv").resolve())
    assert s.study["counts"] == [str((tmp_path / "a.txt").resolve()), "/abs/b.txt"]
    assert s.backend.kind == "standin" and s.lookup.source == "myvariant"


def test_study_file_errors_name_file_and_field(tmp_path):
    (tmp_path / "bad.toml").write_text('[study]\nname="x"\n[backend]\nkind="nope"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: backend.kind"):
        load_study_file(tmp_path / "bad.toml", _Study)
    (tmp_path / "typo.toml").write_text('[study]\nname="x"\n[backend]\nmax_wrokers=3\n')
    with pytest.raises(ConfigError, match="max_wrokers"):
        load_study_file(tmp_path / "typo.toml", _Study)
    with pytest.raises(ConfigError, match="not found"):
        load_study_file(tmp_path / "missing.toml", _Study)
    (tmp_path / "broken.toml").write_text('[study\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_study_file(tmp_path / "broken.toml", _Study)
