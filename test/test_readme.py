"""The README and doc/ say what the code does: the node's parameters and topics as declared, every
doc page in rosdoc2's table of contents, links that lead somewhere, and examples that run offline or
say that they need a download.

doc/node.md's parameter table is generated from segnet_ros/node/params.py; after changing a
parameter, rewrite it with ``python test/test_readme.py --write``. The README's shorter tables are
written by hand and checked here against the same sources.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC = ROOT / "doc"
NODE_DOC = DOC / "node.md"
BEGIN = "<!-- parameters: generated from segnet_ros/node/params.py by `python test/test_readme.py --write` -->"
END = "<!-- end of the generated parameters -->"
MODEL_COMMANDS = ("segment", "bag", "quantize", "evaluate", "nav2-params", "build-engine")

sys.path.insert(0, str(ROOT))
from segnet_ros.core.outputs import OUTPUTS  # noqa: E402
from segnet_ros.node.params import PARAMS  # noqa: E402


def input_topics() -> tuple[str, ...]:
    """``INPUT_TOPICS`` of segnet_ros/node/camera.py, read without importing it (it needs rclpy)."""
    tree = ast.parse((ROOT / "segnet_ros" / "node" / "camera.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "INPUT_TOPICS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("segnet_ros/node/camera.py has no INPUT_TOPICS")


def node_topics() -> set[str]:
    """Every topic the node subscribes or publishes (/diagnostics is the one absolute name)."""
    return set(input_topics()) | set(OUTPUTS) | {"/diagnostics"}


def format_default(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    if value == "":
        return '""'
    return str(value)


def parameter_table() -> str:
    """doc/node.md's table of every parameter, from PARAMS."""
    rows = ["| parameter | default | values | live | what |", "|---|---|---|---|---|"]
    for param in PARAMS:
        if param.choices:
            values = ", ".join(f"`{choice}`" for choice in param.choices)
        elif param.int_range:
            values = f"{param.int_range[0]}..{param.int_range[1]}"
        else:
            values = ""
        what = param.description.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        rows.append(f"| `{param.name}` | `{format_default(param.default)}` | {values} | "
                    f"{'yes' if param.dynamic else ''} | {what} |")
    return "\n".join(rows)


def generated_section() -> str:
    return f"{BEGIN}\n\n{parameter_table()}\n\n{END}"


def table_after(text: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading`` (a whole line), header and rule left out."""
    lines = text.splitlines()
    start = lines.index(heading)
    rows, seen = [], False
    for line in lines[start + 1:]:
        if line.startswith("|"):
            seen = True
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif seen:
            break
    assert len(rows) > 2, f"no table after {heading!r}"
    return rows[2:]


def code_names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_readme_parameter_table_has_every_declared_parameter_with_its_default():
    rows = table_after(README.read_text(), "### Parameters")
    table = {code_names(row[0])[0]: row[1] for row in rows}
    declared = {param.name: param for param in PARAMS}
    assert sorted(table) == sorted(declared), "README parameters differ from segnet_ros/node/params.py"
    for name, default in table.items():
        assert default == f"`{format_default(declared[name].default)}`", f"README: {name}'s default"
    assert len(rows) == len(table), "a parameter is listed twice"


def test_readme_and_node_doc_list_every_topic_of_the_node():
    for path, heading in ((README, "### Topics"), (NODE_DOC, "## Topics")):
        listed = [name for row in table_after(path.read_text(), heading) for name in code_names(row[0])]
        assert sorted(listed) == sorted(node_topics()), f"{path.name}: topics differ from the node's"


def test_node_doc_parameter_table_is_generated_from_params():
    text = NODE_DOC.read_text()
    assert BEGIN in text and END in text
    current = text[text.index(BEGIN):text.index(END) + len(END)]
    assert current == generated_section(), "doc/node.md's parameters are stale: python test/test_readme.py --write"


def test_every_doc_page_is_in_the_rosdoc2_table_of_contents():
    index = (DOC / "index.rst").read_text()
    toctree = index[index.index(".. toctree::"):]
    entries = re.findall(r"^   ([\w/-]+)$", toctree, re.MULTILINE)
    pages = sorted(p.relative_to(DOC).with_suffix("").as_posix() for p in DOC.rglob("*.md"))
    assert sorted(entries) == pages
    for page in pages:  # one title per page: Sphinx names the page after it
        prose = re.sub(r"```.*?```", "", (DOC / f"{page}.md").read_text(), flags=re.DOTALL)
        titles = [line for line in prose.splitlines() if line.startswith("# ")]
        assert len(titles) == 1, f"doc/{page}.md has {len(titles)} top-level titles"


def test_relative_links_lead_to_files():
    for path in [README, *DOC.rglob("*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            assert (path.parent / target.split("#")[0]).exists(), f"{path.name}: broken link {target}"


def commands(text: str):
    """(command, comment, its code block) for each ``segnet-ros`` line of the fenced bash blocks,
    continuation lines joined."""
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition("  #")
            if command.strip().startswith("segnet-ros "):
                yield command.strip(), comment, block


def test_examples_run_offline_or_say_they_need_a_download():
    """Every example that runs a model names the reference network or a model file, or says, in its
    comment or its block, that the model must be downloaded first."""
    checked = 0
    for path in [README, *DOC.rglob("*.md")]:
        for command, comment, block in commands(path.read_text()):
            words = command.split()
            if len(words) < 2 or words[1] not in MODEL_COMMANDS or "--help" in words:
                continue
            checked += 1
            offline = "--network reference" in command or "--model " in command
            assert offline or "download" in comment or "download" in block, f"{path.name}: {command}"
    assert checked > 10


def test_readme_is_a_front_page():
    text = README.read_text()
    assert 150 <= len(text.splitlines()) <= 250
    assert "doc/images/demo.png" in text and "untrained" in text.lower()
    for words in ("make demo", "make test", "source .venv/bin/activate", ".venv/bin/segnet_node --ros-args",
                  "ros2 run segnet_ros", "ros2 launch segnet_ros", "pip install -e '.["):
        assert words in text, words


def test_pip_extras_are_quoted_and_declared_in_setup_py():
    for path in [README, *DOC.rglob("*.md")]:
        text = path.read_text()
        assert not re.search(r"pip install (-e )?\.\[", text), f"{path.name}: unquoted extras"
        for spec in re.findall(r"pip install (?:-e )?'\.\[([^\]]+)\]'", text):
            assert set(spec.split(",")) <= declared_extras(), f"{path.name}: {spec}"


def declared_extras() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            return {key.value for key in node.value.keys}
    raise AssertionError("setup.py has no extras_require")


def test_demo_picture_is_small_and_labelled():
    picture = DOC / "images" / "demo.png"
    assert picture.stat().st_size < 200_000
    text = README.read_text()
    caption = text[text.index("doc/images/demo.png"):][:800]
    assert "untrained reference network" in caption


def write() -> None:
    text = NODE_DOC.read_text()
    NODE_DOC.write_text(text[:text.index(BEGIN)] + generated_section() + text[text.index(END) + len(END):])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(parameter_table())
