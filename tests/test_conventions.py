"""Project conventions checked by the suite: snakefmt-formatted rule files, a lint-clean
workflow (tests/test_workflow.py::test_lint_is_clean), the licence and the citation file."""

from __future__ import annotations

import subprocess

import yaml

from conftest import ROOT


def test_rule_files_are_snakefmt_clean(venv_bin):
    """`snakefmt --check .` (the version pinned in requirements.txt) would change nothing."""
    r = subprocess.run([venv_bin / "snakefmt", "--check", "."], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "would be changed" not in r.stdout + r.stderr


def test_snakefmt_sees_every_rule_file(venv_bin):
    """The check above covers the Snakefile and every workflow/rules/*.smk (none excluded)."""
    r = subprocess.run([venv_bin / "snakefmt", "--check", "--verbose", "."], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    out = r.stdout + r.stderr
    for f in ["Snakefile", *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))]:
        assert f in out, f"{f} not checked by snakefmt:\n{out}"


def test_license_matches_pyproject():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()


def test_citation_file_cites_soundsim_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert "cite the paper" in cff["message"]
    paper = cff["references"][0]
    assert paper["title"] == "Evaluation of Deep Audio Representations for Semantic Sound Similarity"
    assert [a["family-names"] for a in paper["authors"]] == ["Araz", "Bogdanov", "Alonso-Jiménez", "Font"]
    assert paper["year"] == 2024
