"""docs/inprocess-coverage.md is what scripts/gen_inprocess_coverage.py makes from the
materializer registry: a type added, or a replace-on-change set changed, without regenerating
the page fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from branchenv.engines.inprocess.materializers import REGISTRY

REPO_ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    path = REPO_ROOT / "scripts" / "gen_inprocess_coverage.py"
    spec = importlib.util.spec_from_file_location("gen_inprocess_coverage", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_coverage_page_is_current() -> None:
    page = (REPO_ROOT / "docs" / "inprocess-coverage.md").read_text()
    assert page == generator().render(), (
        "docs/inprocess-coverage.md is stale: regenerate it with "
        "`python scripts/gen_inprocess_coverage.py`"
    )


def test_every_registered_type_has_a_row(tmp_path: Path) -> None:
    gen = generator()
    page = gen.render()
    for token in REGISTRY:
        assert f"| `{gen.pulumi_class(token)}` |" in page, token


def test_check_mode_catches_a_stale_page(tmp_path: Path) -> None:
    gen = generator()
    stale = tmp_path / "coverage.md"
    stale.write_text(gen.render().replace("aws.sqs.Queue", "aws.sqs.Q"))
    assert gen.main(["--check", "--out", str(stale)]) == 1
    stale.write_text(gen.render())
    assert gen.main(["--check", "--out", str(stale)]) == 0
