"""The README stays a guide and the docs stay connected: its length, its links and anchors, its two commands, and
the docs/methods.md sections the code cites."""
import glob
import os.path as osp
import re
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
README = osp.join(REPO, 'README.md')
PAGES = [README, osp.join(REPO, 'model_zoo.md')] + sorted(glob.glob(osp.join(REPO, 'docs', '**', '*.md'),
                                                                       recursive=True))
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
CODE_BLOCK = re.compile(r'^```.*?^```', re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (``-`` and ``_`` kept), spaces to ``-``."""
    text = re.sub(r'`|\*\*|\*', '', heading.strip().lower())
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(path: str) -> set:
    with open(path) as f:
        text = CODE_BLOCK.sub('', f.read())
    return {slug(m.group(1)) for m in re.finditer(r'^#{1,6}\s+(.*?)\s*$', text, re.M)}


def links(path: str):
    """(line number, target) of every relative link, outside code blocks and code spans."""
    with open(path) as f:
        text = f.read()
    text = CODE_BLOCK.sub(lambda m: '\n' * m.group(0).count('\n'), text)
    for number, line in enumerate(text.splitlines(), 1):
        for target in LINK.findall(re.sub(r'`[^`]*`', '', line)):
            if not re.match(r'[a-z]+:', target):
                yield number, target


def test_slug_by_hand():
    assert slug('1(d) Weights and schedules (as released)') == '1d-weights-and-schedules-as-released'
    assert slug('ReviewKD and ReviewKD++') == 'reviewkd-and-reviewkd'
    assert slug("The demo's runs") == 'the-demos-runs'


def test_readme_is_at_most_200_lines():
    with open(README) as f:
        assert len(f.read().splitlines()) <= 200


@pytest.mark.parametrize('page', PAGES, ids=lambda p: osp.relpath(p, REPO))
def test_relative_links_resolve(page):
    broken = []
    for number, target in links(page):
        path, _, anchor = target.partition('#')
        full = osp.normpath(osp.join(osp.dirname(page), path)) if path else page
        if not osp.exists(full):
            broken.append(f'line {number}: {target} (no such file)')
        elif anchor and full.endswith('.md') and anchor not in anchors(full):
            broken.append(f'line {number}: {target} (no such heading in {osp.relpath(full, REPO)})')
    assert not broken, f'{osp.relpath(page, REPO)}: ' + '; '.join(broken)


def test_a_broken_link_is_caught(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('# Top\n[ok](#top) [gone](missing.md) `[not a link](x.md)`\n```\n[in code](y.md)\n```\n'
                    '[bad anchor](#nowhere) [web](https://example.com)\n')
    assert list(links(str(page))) == [(2, '#top'), (2, 'missing.md'), (6, '#nowhere')]
    assert anchors(str(page)) == {'top'}


def test_readme_commands_are_the_makefile_targets():
    with open(README) as f:
        readme = f.read()
    section = readme.split('## Two commands', 1)[1].split('\n## ', 1)[0]
    commands = re.findall(r'^make (\w[\w-]*)', CODE_BLOCK.search(section).group(0), re.M)
    assert commands == ['demo', 'test']
    with open(osp.join(REPO, 'Makefile')) as f:
        makefile = f.read()
    targets = set(re.findall(r'^([\w-]+):', makefile, re.M))
    phony = set(re.search(r'^\.PHONY:(.*)$', makefile, re.M).group(1).split())
    assert set(commands) <= targets & phony


def test_ci_runs_make_test():
    with open(osp.join(REPO, '.ci', 'run')) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    assert 'make test' in lines


def code_files():
    files = subprocess.run(['git', 'ls-files', 'mmkd', 'tools', 'tests', 'configs', 'setup.py', 'Makefile'],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [f for f in files if f.endswith(('.py', '.sh', 'Makefile')) and not f.startswith('tools/analysis/logs/')
            and osp.isfile(osp.join(REPO, f))]


def test_code_cites_methods_sections_that_exist():
    with open(osp.join(REPO, 'docs', 'methods.md')) as f:
        sections = set(re.findall(r'^#{2,3} (\d+(?:\([a-z]\))?)[. ]', f.read(), re.M))
    missing = []
    for name in code_files():
        with open(osp.join(REPO, name)) as f:
            for ref in re.findall(r'docs/methods\.md,?\s+(?:section\s+)?(\d+(?:\([a-z]\))?)', f.read()):
                if ref not in sections:
                    missing.append(f'{name}: docs/methods.md {ref}')
    assert not missing, missing
    assert {'1(c)', '1(d)', '2(a)', '2(b)', '3(b)', '3(f)', '4(a)'} <= sections


def test_code_cites_no_issue_numbers_nor_missing_files():
    issue = re.compile(r'\bissues?\s+#?\d+', re.I)
    outside = re.compile(r'(?<!docs/)\b(?:methods|stack|design|dense)\.md\b|\.\./shared|shared/spec')
    bad = []
    for name in code_files():
        if name == 'tests/test_docs.py':
            continue
        with open(osp.join(REPO, name)) as f:
            for number, line in enumerate(f, 1):
                if issue.search(line) or outside.search(line):
                    bad.append(f'{name}:{number}: {line.strip()}')
    assert not bad, bad


def git(*args: str) -> str:
    return subprocess.run(['git', *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_gpu_check_results_stay_out_of_git():
    """gpu_check.sh's default results folder (when $OUT is unset) is ignored, and nothing in it is tracked."""
    with open(osp.join(REPO, 'tools', 'misc', 'gpu_check.sh')) as f:
        default = re.search(r'OUT_DIR=\$\{OUT:-([\w./-]+)\}', f.read()).group(1)
    assert default == 'gpu_check_results'
    assert git('check-ignore', f'{default}/summary.md').strip() == f'{default}/summary.md'
    assert git('ls-files', default) == ''


def test_log_folders_hold_no_scripts_nor_archives():
    """Scripts behind documented numbers live in tools/analysis/ (with tests); superseded studies live in git
    history only."""
    tracked = git('ls-files', 'tools/analysis/logs').split()
    assert not [f for f in tracked if f.endswith('.py')]
    assert not [f for f in tracked if '/archive_' in f]
