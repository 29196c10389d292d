"""The loader builds the data and its positions in the same pass as it composes events (issue 16): an alias
replays the value it names with that value's positions, a refused key skips its value, and a duplicate key
inside an anchored value is reported wherever the value is used, as when the loader composed a tree first."""

from __future__ import annotations

from engine.language.loader import load_text


def test_an_alias_replays_the_value_it_names_with_its_positions() -> None:
    text = "base: &b {x: 1, y: [a, b]}\nfirst: *b\nsecond: {z: *b}\n"
    document, issues = load_text(text, "f.yaml")
    assert document is not None and issues == []
    assert document.data == {
        "base": {"x": 1, "y": ["a", "b"]},
        "first": {"x": 1, "y": ["a", "b"]},
        "second": {"z": {"x": 1, "y": ["a", "b"]}},
    }
    assert document.data["first"] is not document.data["base"]  # a copy of its own, as the loader always gave
    source = document.source
    assert source.value(("first",)) == (1, 7)  # where the named value is written
    assert source.value(("second", "z", "y", 1)) == (1, 24)
    assert source.value(("second",)) == (3, 9)
    assert source.key(("first",)) == (2, 1)
    assert source.key(("second", "z", "x")) == (1, 11)


def test_a_duplicate_key_in_an_anchored_value_is_reported_where_it_is_written() -> None:
    document, issues = load_text("a: &d {k: 1, k: 2}\nb: *d\n", "f.yaml")
    assert document is not None
    assert document.data == {"a": {"k": 1}, "b": {"k": 1}}
    assert [issue.render() for issue in issues] == ["f.yaml:1:14: duplicate key 'k'"] * 2


def test_refused_keys_skip_their_values() -> None:
    text = "? [a]\n: {b: c}\n<<: {m: 1}\nok: 1\nok: {late: 2}\n"
    document, issues = load_text(text, "f.yaml")
    assert document is None
    assert [issue.render() for issue in issues] == [
        "f.yaml:1:3: a key must be a name, not a list",
        "f.yaml:3:1: merge keys ('<<') are not supported: write the keys out",
        "f.yaml:5:1: duplicate key 'ok'",
    ]


def test_an_anchor_named_again_inside_its_value() -> None:
    document, issues = load_text("a: &s [1, &s 2, *s]\nb: *s\n", "f.yaml")
    assert document is not None and issues == []
    assert document.data == {"a": [1, 2, 2], "b": 2}
    assert document.source.value(("a", 2)) == (1, 11)
    assert document.source.value(("b",)) == (1, 11)


def test_a_key_given_by_an_alias() -> None:
    document, issues = load_text("x: &k name\n*k : 2\n", "f.yaml")
    assert document is not None and issues == []
    assert document.data == {"x": "name", "name": 2}
    assert document.source.key(("name",)) == (1, 4)
