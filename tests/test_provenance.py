"""Code versions: normalised source of modules and functions, and package versions."""

from __future__ import annotations

import sys
import textwrap

import pytest

from soundsim import provenance


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    """A real package on sys.path: fakepkg.models.{m, _helper, _deep}, fakepkg.shared."""
    root = tmp_path / "fakepkg"
    (root / "models").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "models" / "__init__.py").write_text("")
    files = {
        "models/m.py": '''
            """A model."""
            from fakepkg.models import _helper

            def load():
                from fakepkg.models._lazy import thing  # imported inside a function
                return _helper.f() + thing
        ''',
        "models/_helper.py": "from . import _deep\ndef f():\n    return _deep.g()\n",
        "models/_deep.py": "def g():\n    return 1\n",
        "models/_lazy.py": "thing = 2\n",
        "models/_unused.py": "x = 3\n",
        "shared.py": '''
            SCALE = 2

            def helper(x):
                return x * SCALE

            def used(x):
                """Docstring."""
                return helper(x) + 1

            def other(x):
                return x
        ''',
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m == "fakepkg" or m.startswith("fakepkg.")]:
        del sys.modules[name]  # the next test's fakepkg lives in another folder


def test_private_helpers_are_found_transitively_also_inside_functions(pkg):
    got = provenance.private_helpers("fakepkg.models.m", package="fakepkg.models")
    assert got == ["fakepkg.models._deep", "fakepkg.models._helper", "fakepkg.models._lazy"]


def test_module_digest_ignores_comments_docstrings_and_layout_but_not_code(pkg):
    d0 = provenance.module_digest("fakepkg.models.m")
    f = pkg / "models" / "m.py"
    src = f.read_text()
    f.write_text(src.replace('"""A model."""', '"""Another docstring."""\n# a comment\n\n'))
    assert provenance.module_digest("fakepkg.models.m") == d0
    f.write_text(src.replace("_helper.f() + thing", "_helper.f() - thing"))
    assert provenance.module_digest("fakepkg.models.m") != d0


def test_function_digest_follows_what_the_function_uses_in_its_module(pkg):
    f = pkg / "shared.py"
    src = f.read_text()
    d0 = provenance.function_digest("fakepkg.shared", "used")
    f.write_text(src.replace("return x\n", "return -x\n"))  # `other` is not used by `used`
    assert provenance.function_digest("fakepkg.shared", "used") == d0
    f.write_text(src.replace("SCALE = 2", "SCALE = 3"))  # a constant `helper` uses
    assert provenance.function_digest("fakepkg.shared", "used") != d0
    f.write_text(src.replace("return x * SCALE", "return x * SCALE * 1"))  # `helper` itself
    assert provenance.function_digest("fakepkg.shared", "used") != d0
    with pytest.raises(ImportError, match="no top-level 'nope'"):
        provenance.function_digest("fakepkg.shared", "nope")


def test_model_code_versions_differ_between_models_and_repeat():
    a = provenance.model_code_version("aisfx")
    assert a == provenance.model_code_version("aisfx") and len(a) == 16
    assert a != provenance.model_code_version("freesound")
    parts = provenance.model_code_parts("clap-2022")
    assert "soundsim.models._msclap" in parts and "soundsim.audio:load" in parts
    assert set(parts["packages"]) >= {"numpy", "soundfile", "soxr"}


def test_env_versions_read_pins_when_no_local_environment(tmp_path):
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "x.txt").write_text("numpy==1.26.4\nmusicnn==0.1.0  # pinned\n")
    (envs / "x.yaml").write_text("dependencies:\n  - python=3.11\n  - pysoundfile=0.14.0\n  - pip:\n      - tensorflow-cpu==2.15.1\n")
    got = provenance.env_versions("x", ["numpy", "musicnn", "soundfile", "tensorflow-cpu", "absent"], root=tmp_path)
    assert got == {"numpy": "1.26.4", "musicnn": "0.1.0", "soundfile": "0.14.0", "tensorflow-cpu": "2.15.1"}


def test_evaluation_code_version_is_stable():
    assert provenance.evaluation_code_version() == provenance.evaluation_code_version()


def test_model_metadata_and_type_hints_do_not_change_a_digest(pkg):
    """Declaring a model's training data, paper or texts does not re-embed a collection
    (METADATA_FIELDS); its rate does. A class used only as a type hint is not followed."""
    f = pkg / "models" / "meta.py"
    src = textwrap.dedent('''
        from soundsim.models import ModelInfo

        INFO = ModelInfo(name="m", sample_rate=16000, description="old text", trained_on=None)


        class Hint:
            size = 1


        class Used:
            size = 2


        def embed(x: Hint) -> Hint:
            return x * Used.size
    ''')
    f.write_text(src)
    d0 = provenance.module_digest("fakepkg.models.meta")
    e0 = provenance.function_digest("fakepkg.models.meta", "embed")
    f.write_text(src.replace('description="old text", trained_on=None',
                             'description="new text", trained_on=("FSD50K",), paper=None')
                 .replace("size = 1", "size = 10"))
    assert provenance.module_digest("fakepkg.models.meta") != d0  # Hint changed: the module did
    f.write_text(src.replace('description="old text", trained_on=None',
                             'description="new text", trained_on=("FSD50K",), paper=None'))
    assert provenance.module_digest("fakepkg.models.meta") == d0
    f.write_text(src.replace("size = 1", "size = 10"))
    assert provenance.function_digest("fakepkg.models.meta", "embed") == e0  # only a hint
    f.write_text(src.replace("size = 2", "size = 20"))
    assert provenance.function_digest("fakepkg.models.meta", "embed") != e0
    f.write_text(src.replace("sample_rate=16000", "sample_rate=22050"))
    assert provenance.module_digest("fakepkg.models.meta") != d0
