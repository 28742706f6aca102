"""The docs site builds strictly (a broken link, a missing anchor or a page left out of the nav fails), the
README's links lead somewhere, and every hwnas command the README and the guides show parses."""
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess:
    # Never --quiet: MkDocs 1.6.1 then drops the warnings --strict counts, and a broken link builds.
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, capture_output=True, text=True, timeout=120)


def test_the_docs_site_builds_strictly(tmp_path):
    r = mkdocs_build(ROOT, tmp_path / "site")
    assert r.returncode == 0, r.stdout + r.stderr
    for page in ("index", "quickstart", "profiling", "strategies", "evaluators", "finalize", "measurements"):
        assert (tmp_path / "site" / (page if page == "index" else f"{page}/index") ).with_suffix(".html").is_file(), page


@pytest.mark.parametrize("breakage", ["[gone](no-such-page.md)", "[gone](spaces.md#no-such-section)", "a page not in the nav"])
def test_the_strict_build_fails_on_what_it_should_catch(tmp_path, breakage):
    """The validation settings of mkdocs.yml at work: each kind of mistake alone stops the build."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.json", "*.txt", "*.png"))
    if breakage.startswith("["):
        with (tmp_path / "docs" / "ray.md").open("a") as f:
            f.write(f"\n{breakage}\n")
    else:
        (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n")
    r = mkdocs_build(tmp_path, tmp_path / "site")
    assert r.returncode != 0 and "Aborted" in r.stdout + r.stderr, r.stdout + r.stderr


def test_the_readmes_links_lead_to_files_and_anchors_that_exist():
    """The README is not part of the site, so its links into docs/ are checked here (anchors as MkDocs makes them)."""
    from markdown.extensions.toc import slugify

    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        if "://" in link:
            continue
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), flags=re.M)
            assert anchor in {slugify(h, "-") for h in headings}, link


def documented_commands() -> list[tuple[str, str]]:
    """Every ``hwnas ...`` line of a code block in the README and docs/*.md: (page, command)."""
    found = []
    for page in PAGES:
        for block in re.findall(r"^```[a-z]*\n(.*?)^```", page.read_text(), flags=re.S | re.M):
            for line in re.sub(r"\\\n\s*", " ", block).split("\n"):
                m = re.match(r"^(?:\$ )?(hwnas [^#\n]*)", line)
                if m:
                    found.append((page.name, m.group(1).strip()))
    return found


def test_every_documented_command_parses():
    """A renamed flag or subcommand fails here, not in a user's shell (parsing only: nothing runs)."""
    from hwnas.app.cli import build_parser

    commands = documented_commands()
    assert len(commands) >= 20
    refused = []
    for page, cmd in commands:
        try:
            build_parser().parse_args(shlex.split(cmd)[1:])
        except SystemExit:
            refused.append(f"{page}: {cmd}")
    assert refused == []
