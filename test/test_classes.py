import numpy as np
import pytest

from segnet_ros.core.classes import ClassTable, generated_colors, parse_colors, parse_labels
from segnet_ros.core.errors import ModelError


def test_colors_accept_spaces_commas_and_alpha(tmp_path):
    path = tmp_path / "colors.txt"
    path.write_text("0 0 0\n128,64,128,180\n\n 70, 70 ,70 255\n")
    assert parse_colors(path) == [(0, 0, 0, None), (128, 64, 128, 180), (70, 70, 70, 255)]


@pytest.mark.parametrize("line", ["1 2", "1 2 3 4 5", "a b c", "0 0 256", "-1 0 0", "1.5 2 3"])
def test_bad_color_line_names_file_and_line(tmp_path, line):
    path = tmp_path / "colors.txt"
    path.write_text(f"0 0 0\n{line}\n")
    with pytest.raises(ModelError, match=r"colors.txt line 2: expected 'r g b \[a\]'"):
        parse_colors(path)


def test_labels_skip_blank_lines_and_reject_binary(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("void\n\nroad\n  sky  \n")
    assert parse_labels(path) == ["void", "road", "sky"]
    path.write_bytes(b"void\n\xff\xfe\x00junk\n")
    with pytest.raises(ModelError, match="not UTF-8"):
        parse_labels(path)
    path.write_text("void\nro\x01ad\n")
    with pytest.raises(ModelError, match="line 2: class name contains control characters"):
        parse_labels(path)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ModelError, match="classes.txt: file not found"):
        parse_labels(tmp_path / "classes.txt")


def test_reconcile_pads_names_and_generates_colors(tmp_path):
    labels, colors = tmp_path / "classes.txt", tmp_path / "colors.txt"
    labels.write_text("a\nb\n")
    colors.write_text("1 2 3\n")
    table = ClassTable.build(4, labels, colors)
    assert table.names == ("a", "b", "class #2", "class #3")
    assert table.rgb[0].tolist() == [1, 2, 3]
    assert table.rgb[1:].tolist() == generated_colors(4)[1:].tolist()
    assert len(table.warnings) == 2 and "placeholders" in table.warnings[0]


def test_reconcile_drops_extra_entries_with_warning(tmp_path):
    labels, colors = tmp_path / "classes.txt", tmp_path / "colors.txt"
    labels.write_text("a\nb\nc\n")
    colors.write_text("1 2 3\n4 5 6\n7 8 9\n")
    table = ClassTable.build(2, labels, colors)
    assert table.names == ("a", "b") and table.rgb.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert any("extra names ignored" in w for w in table.warnings)


def test_explicit_alpha_survives_overlay_alpha(tmp_path):
    colors = tmp_path / "colors.txt"
    colors.write_text("0 0 0\n128 64 128 180\n1 1 1 255\n")
    table = ClassTable.build(3, None, colors)
    rgba = table.rgba(90)
    assert rgba[:, 3].tolist() == [90, 180, 90]  # a=255 is not explicit
    assert table.rgba(200)[:, 3].tolist() == [200, 180, 200]


def test_ignore_class_lookup_is_case_insensitive():
    table = ClassTable.build(3)
    assert table.index_of("CLASS #1") == 1 and table.index_of("void") is None


def test_generated_colors_are_distinct_and_deterministic():
    colors = generated_colors(256)
    assert len({tuple(c) for c in colors.tolist()}) == 256
    assert colors[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert np.array_equal(colors, generated_colors(256))


def test_write_then_build_round_trips(tmp_path):
    colors = tmp_path / "c.txt"
    colors.write_text("10 20 30 40\n50 60 70\n")
    table = ClassTable.build(2, None, colors)
    labels, colors = table.texts()
    (tmp_path / "l2.txt").write_text(labels)
    (tmp_path / "c2.txt").write_text(colors)
    again = ClassTable.build(2, tmp_path / "l2.txt", tmp_path / "c2.txt")
    assert again.names == table.names
    assert np.array_equal(again.rgb, table.rgb) and np.array_equal(again.explicit_alpha, table.explicit_alpha)
